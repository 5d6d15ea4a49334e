// PKCE (RFC 7636) and token claims.
import { describe, expect, it } from "vitest";
import { claims, pkcePair } from "../src/auth";
import { can } from "../src/api";

describe("PKCE", () => {
  it("derives the S256 challenge of RFC 7636's example verifier", async () => {
    // RFC 7636, appendix B: these 32 octets give this verifier and challenge
    const octets = new Uint8Array([
      116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5, 88,
      83, 132, 141, 121,
    ]);
    const { verifier, challenge } = await pkcePair(octets);
    expect(verifier).toBe("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    expect(challenge).toBe("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
  });
});

describe("claims and roles", () => {
  it("reads a token's payload and ranks roles", () => {
    const payload = btoa(JSON.stringify({ tenant: "acme", exp: 1 })).replace(/=+$/, "");
    expect(claims(`h.${payload}.s`)).toEqual({ tenant: "acme", exp: 1 });
    expect(claims("garbage")).toEqual({});
    const me = { tenant: "t", subject: "s", roles: ["analyst"], role: "analyst" as const };
    expect([can(me, "viewer"), can(me, "analyst"), can(me, "admin"), can(null, "viewer")]).toEqual([true, true, false, false]);
  });
});
