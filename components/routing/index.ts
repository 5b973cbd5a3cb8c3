// The routing APIs a stack can choose (config key routingApi), each a component behind the shape in shape.ts.
import type { RoutingApi } from "../config";
import { GatewayApiRouting } from "./gateway-api";
import { IstioRouting } from "./istio";
import type { RoutingComponent } from "./shape";

export const ROUTING: Readonly<Record<RoutingApi, RoutingComponent>> = {
    istio: IstioRouting,
    "gateway-api": GatewayApiRouting,
};
