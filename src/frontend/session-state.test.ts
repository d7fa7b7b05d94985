import { expect, test } from "bun:test";
import { sessionEffects } from "./session-state.ts";

test("state-making SQL is spotted; ordinary SQL is not", () => {
  expect(sessionEffects("SELECT pg_advisory_lock(1)")?.mayPin).toBe(true);
  expect(sessionEffects("create temp table t (x int)")?.mayPin).toBe(true);
  expect(sessionEffects("CREATE TEMPORARY TABLE t (x int)")?.mayPin).toBe(true);
  expect(sessionEffects("DECLARE c CURSOR WITH HOLD FOR SELECT 1")?.mayPin).toBe(true);
  expect(sessionEffects("SELECT 1; PREPARE q AS SELECT 2")?.mayPin).toBe(true);
  expect(sessionEffects("SELECT 1")).toBeNull();
  expect(sessionEffects("SELECT pg_advisory_xact_lock(1)")).toBeNull();
});

test("session SET and RESET name the setting; SET LOCAL and SET TRANSACTION do not", () => {
  expect(sessionEffects("SET search_path TO a, b")?.settings).toEqual(["search_path"]);
  expect(sessionEffects("set statement_timeout = '5s'; SELECT 1")?.settings).toEqual(["statement_timeout"]);
  expect(sessionEffects('SET SESSION "My.Opt" = 1')?.settings).toEqual(["My.Opt"]);
  expect(sessionEffects("RESET work_mem")?.settings).toEqual(["work_mem"]);
  expect(sessionEffects("SET LOCAL work_mem = '1MB'")).toBeNull();
  expect(sessionEffects("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")).toBeNull();
  expect(sessionEffects("SELECT set_config('a.b', '1', false)")).toBeNull();
});
