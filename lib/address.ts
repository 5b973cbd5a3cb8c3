// How to reach the ingress gateway from a shell, for each type of its Service: the command that the
// stack output `gatewayAddressCommand` holds. It prints `host:port` of the gateway's HTTPS port (443 of
// the Service), the form `curl --connect-to ::<host:port>` and `gatewayUrl` take; it fails, saying
// why, when there is no address yet, instead of printing half of one. Pure: tested without Pulumi.
import type { GatewayServiceType } from "../config";

export interface GatewayAddress {
    readonly type: GatewayServiceType;
    /** Namespace of the gateway's Service. */
    readonly namespace: string;
    /** Name of the gateway's Service. */
    readonly service: string;
}

/** A POSIX shell command (for `eval`) that prints the gateway's `host:port`, or fails with a reason on stderr. */
export function gatewayAddressCommand({ type, namespace, service }: GatewayAddress): string {
    const get = `kubectl -n ${namespace} get service ${service} -o jsonpath=`;
    switch (type) {
        case "LoadBalancer":
            return (
                `a="$(${get}'{.status.loadBalancer.ingress[0].ip}{.status.loadBalancer.ingress[0].hostname}')" && ` +
                `if [ -n "$a" ]; then echo "$a:443"; else echo "service ${namespace}/${service} has no load-balancer address yet ` +
                `(a cluster without a load-balancer controller never gives it one: pulumi config set gatewayServiceType NodePort)" >&2; false; fi`
            );
        case "NodePort":
            return (
                `n="$(kubectl get nodes -o jsonpath='{.items[0].status.addresses[?(@.type=="InternalIP")].address}')" && ` +
                `p="$(${get}'{.spec.ports[?(@.port==443)].nodePort}')" && ` +
                `if [ -n "$n" ] && [ -n "$p" ]; then echo "$n:$p"; else echo "no node address or node port for service ${namespace}/${service}" >&2; false; fi`
            );
        case "ClusterIP":
            return (
                `echo "a ClusterIP Service is reached through a port-forward: keep kubectl -n ${namespace} port-forward service/${service} 8443:443 ` +
                `running in another terminal" >&2; echo 127.0.0.1:8443`
            );
    }
}
