// The app's own names: its Service (the prefix of its Deployments and routing objects) and each
// version's Deployment. The program creates objects under them, and the fleet's analysis and the tests
// look for those objects by them, so each is written once, here.

/** The app's Service, and the prefix of its Deployments and routing objects. */
export const APP_NAME = "cowsay-nginx";

/**
 * The Deployment (Istio's destination_workload) of one version: what the program creates and what
 * the fleet's analysis queries Prometheus about, so both read the one rule.
 */
export function workloadName(version: string, appName: string = APP_NAME): string {
    return `${appName}-${version}`;
}
