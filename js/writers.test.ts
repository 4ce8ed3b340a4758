import { afterEach, describe, expect, it, vi } from "vitest";
import { modelAttribution } from "./testing";
import type { AttributionAnswer } from "./attribution";
import { palette } from "./theme";
import { ATTRIBUTION_DEBOUNCE_MS, Writers } from "./writers";

afterEach(() => vi.useRealTimers());

function answer(seq: number, over: Partial<AttributionAnswer> = {}): AttributionAnswer {
  return { type: "attribution", view: "v", seq, row: 2, col: 4, models: [modelAttribution()], error: "", ...over };
}

describe("Writers", () => {
  it("asks for the cell it explains, draws only the newest answer, follows the picture and closes", () => {
    vi.useFakeTimers();
    const parent = document.createElement("div");
    const asked: [number, number, number | null, number][] = [];
    const writers = new Writers(document, parent, { request: (row, col, token, seq) => asked.push([row, col, token, seq]) }, () => {});
    expect(writers.root.hidden).toBe(true);
    writers.explain({ row: 2, col: 4 }, 10);
    expect(asked).toEqual([[2, 4, null, 1]]);
    expect(writers.root.hidden).toBe(false);
    writers.explain({ row: 3, col: 4 }, 10); // another click before the answer
    writers.answer(answer(1)); // stale
    writers.paint(500, palette(false), 1);
    expect(writers.root.dataset.state).toBe("asking");
    writers.answer(answer(2, { row: 3 }));
    writers.paint(500, palette(false), 1);
    expect(writers.root.dataset.state).toBe("shown");
    expect(writers.root.dataset.row).toBe("3");
    expect(writers.root.querySelector("b")).toBeNull(); // model strings as text
    expect(writers.root.querySelector(".lw-writers-title")?.textContent).toBe("What wrote “<b>x</b>” at 2, position 4 (logit lens):");
    expect(writers.root.querySelector(".lw-writers-summary")?.textContent).toContain("sum 1.625 · logit 1.625");
    expect(writers.root.querySelectorAll("canvas")).toHaveLength(1);
    // A new picture: the same cell is asked again once typing settles; a cell that is gone closes it.
    writers.follow(11, () => true);
    vi.advanceTimersByTime(ATTRIBUTION_DEBOUNCE_MS);
    expect(asked.at(-1)).toEqual([3, 4, null, 3]);
    // A pinned token offered and chosen: asked for that token.
    writers.offer([{ id: 9, text: " dog" }]);
    const select = writers.root.querySelector("select") as HTMLSelectElement;
    expect([...select.options].map((o) => o.textContent)).toEqual(["the cell's top-1", "·dog"]);
    select.value = "9";
    select.dispatchEvent(new Event("change"));
    expect(asked.at(-1)).toEqual([3, 4, 9, 4]);
    writers.follow(12, () => false);
    expect(writers.root.hidden).toBe(true);
    expect(writers.open).toBeNull();
    writers.dispose();
    expect(parent.querySelector(".lw-writers")).toBeNull();
  });

  it("shows both models side by side, and an error as its text", () => {
    const parent = document.createElement("div");
    const writers = new Writers(document, parent, { request: () => {} }, () => {});
    writers.explain({ row: 1, col: 0 }, 1);
    writers.answer(answer(1, { models: [modelAttribution(), modelAttribution({ model: "b", name: "other" })] }));
    writers.paint(600, palette(true), 2);
    expect([...writers.root.querySelectorAll(".lw-writers-name")].map((n) => n.textContent)).toEqual(["A: m", "B: other"]);
    expect(writers.root.dataset.models).toBe("2");
    writers.explain({ row: 1, col: 0 }, 1);
    writers.answer(answer(2, { models: [], error: "Could not attribute the cell: <i>why</i>" }));
    writers.paint(600, palette(true), 2);
    expect(writers.root.dataset.state).toBe("error");
    expect(writers.root.querySelector("i")).toBeNull();
    expect(writers.root.textContent).toContain("<i>why</i>");
    writers.close();
    expect(writers.root.hidden).toBe(true);
  });
});
