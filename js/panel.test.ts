import { afterEach, describe, expect, it, vi } from "vitest";
import { COLUMN_DEBOUNCE_MS, Panel } from "./panel";
import { palette } from "./theme";
import type { ColumnAnswer } from "./trajectory";

afterEach(() => vi.useRealTimers());

function answer(col: number, seq: number): ColumnAnswer {
  const logp = { "a/logit": [Math.log(0.1), Math.log(0.2), Math.log(0.9)] };
  return { col, seq, rows: [0, 1, 2], row_labels: ["0", "1", "output"], names: { a: "m" }, curves: ["a/logit"], lines: [{ label: "<b>x</b>", ids: [1], tokens: ["<b>x</b>"], pinned: true, logp, rank: {} }], found: [], error: "" };
}

describe("Panel", () => {
  it("asks for the column it follows once the selection settles, and draws only the newest answer", () => {
    vi.useFakeTimers();
    const parent = document.createElement("div");
    const asked: [number, number][] = [];
    const unpinned: string[] = [];
    const pinned: (number | string)[][] = [];
    const handlers = { request: (col: number, seq: number) => asked.push([col, seq]), pin: (items: (number | string)[]) => pinned.push(items), unpin: (l: string) => unpinned.push(l) };
    const panel = new Panel(document, parent, handlers, () => {});
    panel.follow(3, 1);
    panel.follow(4, 1); // the hover moved on before the first was asked
    panel.follow(4, 1); // nothing new
    vi.advanceTimersByTime(COLUMN_DEBOUNCE_MS);
    expect(asked).toEqual([[4, 1]]);
    panel.follow(4, 2); // a new state: ask again
    vi.advanceTimersByTime(COLUMN_DEBOUNCE_MS);
    expect(asked).toEqual([[4, 1], [4, 2]]);
    panel.answer(answer(4, 1)); // stale: not drawn
    panel.paint(400, () => "t", null, palette(false), 1);
    expect(panel.root.hidden).toBe(true);
    panel.answer(answer(4, 2));
    panel.paint(400, () => "t", 1, palette(false), 1);
    expect(panel.root.hidden).toBe(false);
    expect(panel.root.dataset.col).toBe("4");
    expect(panel.root.dataset.lines).toBe("1");
    expect(panel.root.querySelector("b")).toBeNull(); // model strings as text
    expect(panel.root.textContent).toContain("p(<b>x</b>)");
    expect(panel.root.querySelector(".lw-panel-set")?.textContent).toBe("<b>x</b> = <b>x</b>"); // the set's tokens
    (panel.root.querySelector("button[data-unpin]") as HTMLButtonElement).click();
    expect(unpinned).toEqual(["<b>x</b>"]);
    // The search: asks with its query; a found token pins by id, Enter pins the word.
    const search = panel.root.querySelector(".lw-panel-search") as HTMLInputElement;
    search.value = "do";
    search.dispatchEvent(new Event("input"));
    vi.advanceTimersByTime(COLUMN_DEBOUNCE_MS);
    expect(asked.at(-1)).toEqual([4, 3]);
    panel.answer({ ...answer(4, 3), found: [{ id: 7, text: " dog", probability: 0.25, row: 2 }] });
    panel.paint(400, () => "t", null, palette(false), 1);
    const hit = panel.root.querySelector(".lw-panel-hit") as HTMLButtonElement;
    expect(hit.textContent).toBe("·dog 25.0%");
    hit.click();
    search.value = "chien";
    search.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(pinned).toEqual([[7], ["chien"]]);
    expect(search.value).toBe("");
    panel.dispose();
    expect(parent.querySelector(".lw-panel")).toBeNull();
  });
});
