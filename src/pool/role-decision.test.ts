import { describe, expect, test } from "bun:test";
import { decideRole, type RoleDecision, type RoleFacts } from "./role-decision.ts";

const base: RoleFacts = { primary: "none", ok: true, inconclusive: false, inRecovery: false, patroni: "none" };

// Every condition in decideRole() is the reason for at least one row's answer: delete it and a row fails.
const table: Array<[Partial<RoleFacts>, RoleDecision]> = [
  // the first host found out of recovery becomes the primary
  [{}, "adopt"],
  [{ inRecovery: true }, "replica"],
  // the primary answering as one stays
  [{ primary: "this" }, "keep"],
  // a failed check marks the host down, whoever it is
  [{ ok: false }, "down"],
  [{ ok: false, primary: "this" }, "down"],
  [{ ok: false, primary: "other-up" }, "down"],
  // unless it proves nothing about the host (the check found the server full)
  [{ ok: false, inconclusive: true, primary: "this" }, "keep"],
  // failover: the old primary is down and this one left recovery
  [{ primary: "other-down" }, "adopt"],
  [{ primary: "other-down", inRecovery: true }, "replica"],
  // split brain: the primary still answers, so the newcomer gets nothing
  [{ primary: "other-up" }, "conflict"],
  [{ primary: "other-up", inRecovery: true }, "replica"],
  // the primary went into recovery (demoted, or rejoined as a replica)
  [{ primary: "this", inRecovery: true }, "demoted"],
  // Patroni: a host out of recovery is trusted with writes only if Patroni calls it the leader
  [{ patroni: "not-leader" }, "unconfirmed"],
  [{ patroni: "not-leader", primary: "other-down" }, "unconfirmed"],
  [{ patroni: "not-leader", primary: "this" }, "demoted"],
  [{ patroni: "leader", primary: "other-down" }, "adopt"],
  [{ patroni: "leader", primary: "other-up" }, "conflict"],
  [{ patroni: "not-leader", inRecovery: true }, "replica"],
];

describe("decideRole", () => {
  for (const [over, want] of table) {
    test(`${JSON.stringify(over)} -> ${want}`, () => {
      expect(decideRole({ ...base, ...over })).toBe(want);
    });
  }
});
