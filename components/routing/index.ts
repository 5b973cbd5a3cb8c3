// The routing APIs a stack can choose (config key routingApi), each behind the shape in shape.ts.
import type { RoutingApi } from "../config";
import { gatewayApiRouting } from "./gateway-api";
import { istioRouting } from "./istio";
import type { RoutingFactory } from "./shape";

export const ROUTING: Readonly<Record<RoutingApi, RoutingFactory>> = {
    istio: istioRouting,
    "gateway-api": gatewayApiRouting,
};
