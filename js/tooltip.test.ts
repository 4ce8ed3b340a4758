import { describe, expect, it } from "vitest";
import { fillTooltip, TooltipBox, type TooltipInfo } from "./tooltip";

const info: TooltipInfo = {
  rowLabel: "3",
  col: 5,
  statistic: "Entropy",
  value: 2.5,
  units: "nats",
  input: " the",
  next: { text: " capital", rank: 4, probability: 0.032 },
  top: Array.from({ length: 10 }, (_, i) => ({ text: i === 0 ? "<img src=x onerror=alert(1)>" : ` t${i}`, probability: 0.5 / (i + 1) })),
  pinned: false,
};

describe("tooltip", () => {
  it("lists the top 10 tokens with bars, the input and the real next token", () => {
    const el = document.createElement("div");
    fillTooltip(el, info);
    expect(el.querySelectorAll(".lw-tip-row").length).toBe(10);
    expect(el.textContent).toContain("layer 3 · position 5");
    expect(el.textContent).toContain("input: ·the");
    expect(el.textContent).toContain("next: ·capital · rank 4 · p 3.20%");
    expect((el.querySelector(".lw-tip-fill") as HTMLElement).style.width).toBe("50.0%");
  });

  it("puts model strings in as text, never as HTML", () => {
    const el = document.createElement("div");
    fillTooltip(el, info);
    expect(el.querySelector("img")).toBeNull();
    expect(el.querySelector(".lw-tip-token")!.textContent).toBe("<img·src=x·onerror=alert(1)>");
  });

  it("says when there is no next token", () => {
    const el = document.createElement("div");
    fillTooltip(el, { ...info, next: null, rowLabel: "output", pinned: true });
    expect(el.textContent).toContain("model output");
    expect(el.textContent).toContain("next: none (last position)");
    expect(el.textContent).toContain("pinned");
  });

  it("never repeats a unit, and shows plain numbers bare", () => {
    const el = document.createElement("div");
    fillTooltip(el, { ...info, statistic: "Max prob", value: 0.748, units: "" });
    expect(el.textContent).toContain("Max prob: 0.748");
    expect(el.textContent).not.toContain("probability");
    fillTooltip(el, info);
    expect(el.textContent).toContain("Entropy: 2.500 nats");
  });

  it("says a cell is invalid instead of describing a distribution it does not have", () => {
    const el = document.createElement("div");
    fillTooltip(el, { ...info, invalid: true });
    expect(el.textContent).toContain("invalid");
    expect(el.querySelectorAll(".lw-tip-row").length).toBe(0);
  });
});

describe("pinning from the tooltip", () => {
  it("a clicked cell's top tokens pin by id when clicked; a hovered cell's are not clickable", () => {
    const root = document.createElement("div");
    const pinned: number[] = [];
    const box = new TooltipBox(document, root, (id) => pinned.push(id));
    const withIds = { ...info, top: info.top.map((t, i) => ({ ...t, id: 100 + i })) };
    const cell = { x: 0, y: 0, w: 10, h: 10 };
    box.show(withIds, cell);
    expect(box.el.querySelector(".lw-tip-row[data-id]")).toBeNull();
    box.show({ ...withIds, pinned: true }, cell);
    expect(box.el.classList.contains("lw-tip-pinned")).toBe(true);
    (box.el.querySelectorAll<HTMLElement>(".lw-tip-row .lw-tip-token")[2] as HTMLElement).click();
    expect(pinned).toEqual([102]);
    // Shown again unchanged (every redraw does): the same rows, so a click across a redraw still lands.
    const row = box.el.querySelector(".lw-tip-row");
    box.show({ ...withIds, pinned: true }, cell);
    expect(box.el.querySelector(".lw-tip-row")).toBe(row);
    box.show({ ...withIds, pinned: true, top: withIds.top.slice(1) }, cell);
    expect(box.el.querySelector(".lw-tip-row")).not.toBe(row); // something new: rebuilt
    box.dispose();
    (box.el.querySelector(".lw-tip-row") as HTMLElement).click();
    expect(pinned).toEqual([102]); // no listener once disposed
  });
});

describe("tooltip in the A/B diff mode", () => {
  it("shows both models' top-10 side by side, with the pair's divergences", () => {
    const el = document.createElement("div");
    const top = Array.from({ length: 10 }, (_, i) => ({ text: ` b${i}`, probability: 0.4 / (i + 1) }));
    fillTooltip(el, {
      ...info,
      compare: {
        names: ["base", "tuned"],
        top,
        next: { text: " capital", rank: 2, probability: 0.2 },
        pair: [{ label: "JS(A, B)", value: 0.12, units: "nats" }],
      },
    });
    expect(el.querySelectorAll(".lw-tip-column")).toHaveLength(2);
    expect(el.querySelectorAll(".lw-tip-row")).toHaveLength(20);
    expect([...el.querySelectorAll(".lw-tip-name")].map((n) => n.textContent)).toEqual(["base", "tuned"]);
    expect(el.textContent).toContain("JS(A, B): 0.120 nats");
  });
});
