// The routing APIs a stack can choose (config key routingApi), each a component behind the shape in
// shape.ts, with the ACME HTTP-01 solver that reaches its port 80.
import type { RoutingApi } from "../../config";
import { GatewayApiRouting, gatewayApiHttp01Solver } from "./gateway-api";
import { IstioRouting, istioHttp01Solver } from "./istio";
import type { RoutingApiChoice } from "./shape";

export const ROUTING: Readonly<Record<RoutingApi, RoutingApiChoice>> = {
    istio: { component: IstioRouting, http01Solver: istioHttp01Solver },
    "gateway-api": { component: GatewayApiRouting, http01Solver: gatewayApiHttp01Solver },
};
