import { describe, expect, it } from "vitest";
import { type StatusInput, SNAPSHOT_NOTE, statusOf } from "./status";
import { grid, scene, state, T } from "./testing";

const base = (extra: Partial<StatusInput> = {}): StatusInput => ({
  scene: scene(state(grid(1)), { mode: "a" }),
  snapshotMode: false,
  typing: false,
  stride: 1,
  lens: "logit",
  remote: "",
  errors: [],
  ...extra,
});

describe("statusOf", () => {
  it("counts the tokens of a settled picture", () => {
    const status = statusOf(base());
    expect(status).toMatchObject({ text: `${T} tokens`, busy: false, errors: "", snapshotNote: "" });
  });

  it("is busy while typing is out, rows are missing or the other lens is asked for", () => {
    expect(statusOf(base({ typing: true })).text).toBe("computing…");
    const fewRows = scene(state(grid(1)), { mode: "a", stride: 2 });
    expect(statusOf(base({ scene: fewRows, stride: 1 })).busy).toBe(true); // stride 1 wants 3 rows; 2 are shown
    expect(statusOf(base({ lens: "tuned" })).busy).toBe(true);
  });

  it("says a remote trace is queued or running, and nothing of it in a snapshot", () => {
    expect(statusOf(base({ remote: "queued" })).text).toBe("queued…");
    const saved = statusOf(base({ remote: "running", snapshotMode: true, lens: "tuned" }));
    expect(saved).toMatchObject({ text: `${T} tokens`, busy: false, snapshotNote: SNAPSHOT_NOTE });
  });

  it("names the token range shown, and joins the messages that are not empty", () => {
    const s = scene(state(grid(1)), { mode: "a", first: 1, count: 2 });
    const status = statusOf(base({ scene: s, errors: ["", "bad payload", "", "kernel error"] }));
    expect(status.text).toBe(`tokens 1–2 of ${T} tokens`);
    expect(status.errors).toBe("bad payload\nkernel error");
  });
});
