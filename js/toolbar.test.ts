import { describe, expect, it } from "vitest";
import type { Mode } from "./picture";
import { grid, scene, state } from "./testing";
import { Toolbar, type ToolbarHandlers } from "./toolbar";

function toolbar() {
  const chosen: unknown[][] = [];
  const handlers: ToolbarHandlers = {
    mode: (m: Mode) => chosen.push(["mode", m]),
    statistic: (k) => chosen.push(["statistic", k]),
    stride: (n) => chosen.push(["stride", n]),
    lens: (l) => chosen.push(["lens", l]),
    colorScale: (m) => chosen.push(["colorScale", m]),
    sublayers: (on) => chosen.push(["sublayers", on]),
    png: () => chosen.push(["png"]),
  };
  const parent = document.createElement("div");
  return { bar: new Toolbar(document, parent, handlers), parent, chosen };
}

describe("Toolbar", () => {
  it("offers the modes and statistics of an A/B scene, and reports the user's choices", () => {
    const { bar, parent, chosen } = toolbar();
    bar.update({ scene: scene(state(grid(1)), { mode: "diff" }), stride: 1, lens: "tuned", lensOptions: ["tuned", "logit"], snapshotMode: false, colorScale: "fixed", sublayers: false });
    const modes = Array.from(parent.querySelectorAll<HTMLButtonElement>(".lw-mode"));
    expect(modes.map((b) => b.textContent)).toEqual(["A: base", "B: tuned", "diff B − A"]);
    expect(modes[2]?.getAttribute("aria-pressed")).toBe("true");
    (parent.querySelector('[data-mode="b"]') as HTMLButtonElement).click();
    const stats = parent.querySelectorAll<HTMLButtonElement>(".lw-stat");
    stats[0]?.click();
    const select = parent.querySelector("select") as HTMLSelectElement;
    select.value = "logit";
    select.dispatchEvent(new Event("change"));
    const fixed = parent.querySelector(".lw-scale") as HTMLButtonElement;
    expect(fixed.getAttribute("aria-pressed")).toBe("true");
    fixed.click(); // on: asks for the picture's own scale
    (parent.querySelector(".lw-png") as HTMLButtonElement).click();
    expect(chosen).toEqual([["mode", "b"], ["statistic", stats[0]?.dataset.statistic], ["lens", "logit"], ["colorScale", "view"], ["png"]]);
    bar.dispose();
    (parent.querySelector(".lw-png") as HTMLButtonElement).click();
    expect(chosen.length).toBe(5); // no listeners once disposed
  });

  it("hides the modes of one model and the lens choice without a tuned lens; a snapshot cannot switch lenses", () => {
    const { bar, parent } = toolbar();
    bar.update({ scene: null, stride: 2, lens: "logit", lensOptions: ["logit"], snapshotMode: true, colorScale: "view", sublayers: true });
    expect((parent.querySelector(".lw-modes") as HTMLElement).hidden).toBe(true);
    expect((parent.querySelector(".lw-lens") as HTMLElement).hidden).toBe(true);
    expect((parent.querySelector("select") as HTMLSelectElement).disabled).toBe(true);
    expect(parent.querySelector(".lw-stride-value")?.textContent).toBe("2");
    expect(parent.querySelector(".lw-scale")?.getAttribute("aria-pressed")).toBe("false");
    expect(parent.querySelector(".lw-sublayers")?.getAttribute("aria-pressed")).toBe("true");
  });

  it("toggles the rows after attention, telling how the tuned lens reads them", () => {
    const { bar, parent, chosen } = toolbar();
    const button = parent.querySelector(".lw-sublayers") as HTMLButtonElement;
    expect(button.title).toContain("layer ℓ's translator");
    bar.update({ scene: null, stride: 1, lens: "logit", lensOptions: ["logit"], snapshotMode: false, colorScale: "fixed", sublayers: false });
    expect(button.getAttribute("aria-pressed")).toBe("false");
    button.click();
    bar.update({ scene: null, stride: 1, lens: "logit", lensOptions: ["logit"], snapshotMode: false, colorScale: "fixed", sublayers: true });
    button.click();
    expect(chosen).toEqual([["sublayers", true], ["sublayers", false]]);
  });
});
