// A throwaway self-signed certificate, as the default issuer would give the real gateway: for the
// stand-in gateway's HTTPS side, the traffic tests' TLS server and the TLS Secret the e2e suites
// create in place of cert-manager's. One day, P-256, made by openssl (a harness requirement,
// docs/testing.md).
import { execFileSync } from "node:child_process";
import * as path from "node:path";

/** Writes `key.pem` and `cert.pem` for `commonName` into `dir`; returns their paths. */
export function selfSignedCertificate(dir: string, commonName: string): { key: string; cert: string } {
    const key = path.join(dir, "key.pem");
    const cert = path.join(dir, "cert.pem");
    execFileSync(
        "openssl",
        [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            `/CN=${commonName}`,
            "-keyout",
            key,
            "-out",
            cert,
        ],
        { stdio: "ignore" },
    );
    return { key, cert };
}
