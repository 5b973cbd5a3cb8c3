// The TLS Secret's name (components/tls.ts tlsSecretName): the rule itself, and that the program's
// Certificate writes the Secret it names, which is the one the end-to-end suites issue in
// cert-manager's place (test/support/istio-routes.ts createTlsSecret).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { tlsSecretName } from "../components/tls";
import { GW, find, runProgram, spec } from "./support/helpers";

const CERTIFICATE = "kubernetes:cert-manager.io/v1:Certificate";
/** What the API server accepts as a Secret's name (a DNS-1123 subdomain). */
const DNS_1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

describe("the TLS Secret's name", () => {
    it("is the host with every dot as a dash, then -tls", () => {
        assert.equal(tlsSecretName("cowsay.example.com"), "cowsay-example-com-tls");
        assert.equal(tlsSecretName("a.b.c.d"), "a-b-c-d-tls");
        assert.equal(tlsSecretName("localhost"), "localhost-tls");
        assert.match(tlsSecretName("shop.eu.example.com"), DNS_1123_SUBDOMAIN);
    });

    it("is the Secret the program's Certificate writes and its Gateway serves, for the stack's hostname", async () => {
        // Given a hostname other than the example stack's, when the program runs,
        const run = await runProgram({ hostname: "shop.eu.example.com" });
        assert.equal(run.error, undefined);
        // then the Certificate writes the Secret the rule names, and the HTTPS server reads that one.
        assert.equal(spec(find(run, CERTIFICATE)).secretName, "shop-eu-example-com-tls");
        assert.equal(spec(find(run, CERTIFICATE)).secretName, tlsSecretName("shop.eu.example.com"));
        const https = spec(find(run, GW)).servers.find((s: { tls?: { credentialName?: string } }) => s.tls?.credentialName !== undefined);
        assert.equal(https.tls.credentialName, tlsSecretName("shop.eu.example.com"));
    });
});
