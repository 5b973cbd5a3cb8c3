// Entry point of the cowsay-bluegreen policy pack: `pulumi preview --policy-pack policy` runs this.
// The policies themselves live in policies.ts so they can be tested without starting the server.

import { PolicyPack } from "@pulumi/policy";
import { policies } from "./policies";

new PolicyPack("cowsay-bluegreen", {
    policies,
    enforcementLevel: "mandatory",
});
