import { describe, expect, test } from "bun:test";
import { ConfigError } from "../config/errors.ts";
import { parseHba } from "../config/hba-file.ts";
import { matchHba, type HbaLogin } from "./hba.ts";

const login = (o: Partial<HbaLogin>): HbaLogin => ({ local: false, tls: false, addr: "127.0.0.1", database: "app", user: "alice", replication: null, ...o });
const methodOf = (text: string, o: Partial<HbaLogin>) => matchHba(parseHba(text, "hba.conf"), login(o))?.method ?? null;

describe("auth_hba_file matching", () => {
  test("addresses: IPv4 and IPv6 CIDR, address and netmask fields, IPv4-mapped clients", () => {
    const rules = "host all all 10.1.0.0/16 trust\nhost all all fe80::/10 md5\nhost all all 192.168.1.0 255.255.255.0 password\n";
    expect(methodOf(rules, { addr: "10.1.2.3" })).toBe("trust");
    expect(methodOf(rules, { addr: "10.2.0.1" })).toBeNull();
    expect(methodOf(rules, { addr: "::ffff:10.1.9.9" })).toBe("trust");
    expect(methodOf(rules, { addr: "fe80::1" })).toBe("md5");
    expect(methodOf(rules, { addr: "192.168.1.77" })).toBe("password");
  });

  test("keywords: all, sameuser, replication for physical replication only, and quoted names that are not keywords", () => {
    const rules = 'host replication all all reject\nhost sameuser all all md5\nhost "all" bob all trust\nhost app,other all all scram-sha-256\n';
    expect(methodOf(rules, { replication: "physical" })).toBe("reject");
    // Logical replication connections match like any login to their database.
    expect(methodOf(rules, { replication: "logical" })).toBe("scram-sha-256");
    expect(methodOf(rules, { database: "alice" })).toBe("md5");
    expect(methodOf(rules, { database: "all", user: "bob" })).toBe("trust");
    expect(methodOf(rules, { database: "elsewhere", user: "bob" })).toBeNull();
    expect(methodOf("host all all all md5\n", { replication: "physical" })).toBeNull();
  });

  test("connection types: local for the Unix socket, hostssl and hostnossl by TLS; comments and continued lines", () => {
    const rules = "# comment\nlocal all all trust # trailing\nhostssl all all all \\\n  cert\nhostnossl all all all password\n";
    expect(methodOf(rules, { local: true, addr: "" })).toBe("trust");
    expect(methodOf(rules, { tls: true })).toBe("cert");
    expect(methodOf(rules, {})).toBe("password");
  });

  test("what cannot be honoured is refused with the line", () => {
    const error = (text: string) => {
      try {
        parseHba(text, "hba.conf");
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error("expected an error");
    };
    expect(error("host all all 10.0.0.0/33 md5")).toBe('auth_hba_file hba.conf line 1: "10.0.0.0/33" has an invalid prefix length (0 to 32)');
    expect(error("host all all 10.0.0.1 md5")).toBe('auth_hba_file hba.conf line 1: "10.0.0.1" needs a prefix length (e.g. 10.0.0.1/32) or a netmask field');
    expect(error("hostgssenc all all all md5")).toContain("pgbun offers no GSSAPI encryption");
    expect(error("local all all md5 map=x")).toContain("option map=x is not supported");
    expect(error("local all")).toContain("a local line needs database, user and method");
  });
});
