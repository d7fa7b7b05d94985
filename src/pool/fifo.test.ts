import { describe, expect, test } from "bun:test";
import { Fifo } from "./fifo.ts";

describe("Fifo", () => {
  test("hands items out oldest first, across compactions", () => {
    const q = new Fifo<number>();
    const out: number[] = [];
    let next = 0;
    // Interleave pushes and shifts so the consumed front is reclaimed many times while items remain.
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 300; i++) q.push(next++);
      for (let i = 0; i < 200; i++) out.push(q.shift()!);
    }
    while (q.length > 0) out.push(q.shift()!);
    expect(out).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(q.shift()).toBeUndefined();
  });

  test("remove takes an item out of the middle and reports whether it was there", () => {
    const q = new Fifo<string>();
    for (const s of ["a", "b", "c", "d"]) q.push(s);
    expect(q.shift()).toBe("a");
    expect(q.remove("a")).toBe(false);
    expect(q.remove("c")).toBe(true);
    expect(q.length).toBe(2);
    expect(q.drain()).toEqual(["b", "d"]);
    expect(q.length).toBe(0);
  });
});
