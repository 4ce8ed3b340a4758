import { describe, expect, it } from "vitest";
import { EditSync, editDone, isEditDone } from "./sync";
import { ManualClock } from "./testing";

function setup() {
  const clock = new ManualClock();
  const sent: [string, number][] = [];
  const sync = new EditSync((text, edit) => sent.push([text, edit]), 120, clock);
  return { clock, sent, sync };
}

describe("EditSync", () => {
  it("sends a keystroke after a quiet spell at once", () => {
    const { sent, sync } = setup();
    sync.input("P");
    expect(sent).toEqual([["P", 1]]);
  });

  it("merges a burst and sends its newest text 120 ms after the last keystroke", () => {
    const { clock, sent, sync } = setup();
    sync.input("P");
    sync.finished(1);
    for (const text of ["Pa", "Par", "Pari"]) {
      clock.advance(50);
      sync.input(text);
    }
    clock.advance(119);
    expect(sent).toEqual([["P", 1]]);
    clock.advance(1);
    expect(sent).toEqual([["P", 1], ["Pari", 4]]);
  });

  it("latest wins: one edit in flight, and only the newest text is sent next", () => {
    const { clock, sent, sync } = setup();
    sync.input("a");
    clock.advance(120);
    expect(sent).toEqual([["a", 1]]);
    for (const text of ["ab", "abc", "abcd"]) {
      sync.input(text);
      clock.advance(200);
    }
    expect(sent).toEqual([["a", 1]]);
    expect(sync.pending).toBe(true);
    sync.finished(1);
    expect(sent).toEqual([["a", 1], ["abcd", 4]]);
    expect(sync.pending).toBe(true);
    sync.finished(4);
    expect(sync.pending).toBe(false);
  });

  it("is pending from the first keystroke until the kernel has finished the newest edit", () => {
    const { clock, sync } = setup();
    expect(sync.pending).toBe(false);
    sync.input("a");
    expect(sync.pending).toBe(true);
    sync.input("ab"); // waiting for its pause: not sent yet, still pending after edit 1 is done
    sync.finished(1);
    expect(sync.pending).toBe(true);
    clock.advance(120);
    sync.finished(2);
    expect(sync.pending).toBe(false);
  });

  it("ignores answers to edits it never sent or already had", () => {
    const { clock, sent, sync } = setup();
    sync.input("a");
    sync.finished(7); // not ours: edit 7 was never sent
    expect(sync.pending).toBe(true);
    sync.finished(1);
    sync.finished(1);
    clock.advance(120);
    sync.input("ab");
    expect(sent).toEqual([["a", 1], ["ab", 2]]);
  });

  it("an edit typed while busy is sent even if its timer fired earlier", () => {
    const { clock, sent, sync } = setup();
    sync.input("a");
    clock.advance(120);
    sync.input("ab");
    clock.advance(120);
    sync.finished(1);
    expect(sent.at(-1)).toEqual(["ab", 2]);
  });

  it("dispose cancels a pending send", () => {
    const { clock, sent, sync } = setup();
    sync.input("a");
    sync.finished(1);
    sync.input("ab");
    sync.dispose();
    clock.advance(500);
    expect(sent).toEqual([["a", 1]]);
  });
});

describe("isEditDone", () => {
  it("accepts only this view's answers with a safe edit number", () => {
    expect(isEditDone({ type: "edit_done", view: "v", edit: 3 }, "v")).toBe(true);
    expect(isEditDone({ type: "edit_done", view: "other", edit: 3 }, "v")).toBe(false);
    expect(isEditDone({ type: "edit_done", view: "v", edit: 1e300 }, "v")).toBe(false);
    expect(isEditDone({ type: "edit_done", view: "v", edit: "3" }, "v")).toBe(false);
  });

  it("reads the answer an update carries, or an edit_done message, for this view only", () => {
    expect(editDone({ type: "edit_done", view: "v", edit: 3 }, "v")).toBe(3);
    expect(editDone({ type: "update", payload: {}, done: { view: "v", edit: 4 } }, "v")).toBe(4);
    expect(editDone({ type: "update", payload: {}, done: { view: "w", edit: 4 } }, "v")).toBeNull();
    expect(editDone({ type: "update", payload: {} }, "v")).toBeNull();
    expect(editDone({ type: "update", done: { view: "v", edit: 0.5 } }, "v")).toBeNull();
    expect(editDone({ type: "pong", view: "v" }, "v")).toBeNull();
    expect(isEditDone(null, "v")).toBe(false);
  });
});
