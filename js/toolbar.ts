// The toolbar: which model (A/B), which statistic, the layer stride, the lens, the PNG button and the
// status line. It builds its controls once, updates them from the scene and the traits, and reports
// the user's choices to its owner; it keeps no state of its own.

import { Disposer } from "./disposer";
import { assign, attribute, classed, element } from "./dom";
import { choices, effectiveMode, isAB, type Mode, modelNames, type Scene, shown } from "./picture";
import { title as statisticTitle } from "./statistics";
import type { ScaleMode } from "./model";
import type { Status } from "./status";
import { SUBLAYER_LENS_NOTE } from "./rows";

export interface ToolbarHandlers {
  mode(mode: Mode): void;
  statistic(key: string): void;
  stride(stride: number): void;
  lens(lens: string): void;
  /** The colour scale: fixed per statistic, or this picture's own range. */
  colorScale(mode: ScaleMode): void;
  /** Show the rows after each attention ("ℓ.attn") or not. */
  sublayers(on: boolean): void;
  png(): void;
}

export interface ToolbarInput {
  scene: Scene | null;
  stride: number;
  lens: string;
  lensOptions: string[];
  snapshotMode: boolean;
  colorScale: ScaleMode;
  sublayers: boolean;
}

export class Toolbar {
  readonly root: HTMLDivElement;
  readonly status: HTMLSpanElement;
  private readonly modes: HTMLDivElement;
  private readonly stats: HTMLDivElement;
  private readonly strideLabel: HTMLLabelElement;
  private readonly strideInput: HTMLInputElement;
  private readonly strideValue: HTMLSpanElement;
  private readonly lensLabel: HTMLLabelElement;
  private readonly lensSelect: HTMLSelectElement;
  private readonly scaleButton: HTMLButtonElement;
  private readonly sublayersButton: HTMLButtonElement;
  private readonly disposer = new Disposer();

  constructor(
    private readonly doc: Document,
    parent: HTMLElement,
    handlers: ToolbarHandlers,
  ) {
    this.root = element(doc, "div", "lw-toolbar", parent);
    this.modes = group(doc, this.root, "lw-modes", "model shown");
    this.stats = group(doc, this.root, "lw-stats", "statistic");
    this.strideLabel = element(doc, "label", "lw-stride", this.root);
    this.strideLabel.append("layer stride");
    this.strideInput = element(doc, "input", "lw-stride-input", this.strideLabel);
    this.strideInput.type = "range";
    this.strideInput.min = "1";
    this.strideValue = element(doc, "span", "lw-stride-value", this.strideLabel);
    this.lensLabel = element(doc, "label", "lw-lens", this.root);
    this.lensLabel.append("lens");
    this.lensSelect = element(doc, "select", "lw-lens-select", this.lensLabel);
    this.scaleButton = element(doc, "button", "lw-scale", this.root);
    this.scaleButton.type = "button";
    this.scaleButton.textContent = "fixed scale";
    this.scaleButton.title = "On: one colour scale per statistic (0 to its bound, such as ln V nats) for every lens and model, so pictures compare. Off: the picture's own range.";
    this.sublayersButton = element(doc, "button", "lw-sublayers", this.root);
    this.sublayersButton.type = "button";
    this.sublayersButton.textContent = "after attention";
    this.sublayersButton.title = `On: a row under each layer ℓ, "ℓ.attn": the residual stream after that block's attention (input + attention output), on the way to ℓ. ${SUBLAYER_LENS_NOTE}`;
    const png = element(doc, "button", "lw-png", this.root);
    png.type = "button";
    png.textContent = "PNG";
    png.title = "Download the heatmap (every column in the token range) with its labels and legend as a PNG";
    this.status = element(doc, "span", "lw-status", this.root);
    const d = this.disposer;
    d.listen(png, "click", () => handlers.png());
    d.listen(this.scaleButton, "click", () => handlers.colorScale(this.scaleButton.getAttribute("aria-pressed") === "true" ? "view" : "fixed"));
    d.listen(this.sublayersButton, "click", () => handlers.sublayers(this.sublayersButton.getAttribute("aria-pressed") !== "true"));
    d.listen(this.modes, "click", (event) => {
      const mode = (event.target as HTMLElement).closest("button")?.dataset.mode;
      if (mode) handlers.mode(mode as Mode);
    });
    d.listen(this.stats, "click", (event) => {
      const key = (event.target as HTMLElement).closest("button")?.dataset.statistic;
      if (key) handlers.statistic(key);
    });
    d.listen(this.strideInput, "input", () => handlers.stride(Number(this.strideInput.value)));
    d.listen(this.lensSelect, "change", () => handlers.lens(this.lensSelect.value));
  }

  update(input: ToolbarInput): void {
    this.updateModes(input.scene);
    this.updateStatistics(input.scene);
    const layers = input.scene?.state.header.num_layers ?? 1;
    assign(this.strideInput, "max", String(Math.max(1, layers)));
    assign(this.strideInput, "value", String(input.stride));
    assign(this.strideValue, "textContent", String(input.stride));
    assign(this.lensLabel, "hidden", input.lensOptions.length < 2);
    if (this.lensSelect.childElementCount !== input.lensOptions.length) {
      this.lensSelect.replaceChildren();
      for (const option of input.lensOptions) {
        const node = element(this.doc, "option", "", this.lensSelect);
        node.value = option;
        node.textContent = option === "tuned" ? "tuned lens" : "logit lens";
      }
    }
    assign(this.lensSelect, "value", input.lens);
    assign(this.lensSelect, "disabled", input.snapshotMode);
    attribute(this.scaleButton, "aria-pressed", String(input.colorScale !== "view"));
    attribute(this.sublayersButton, "aria-pressed", String(input.sublayers));
  }

  showStatus(status: Status): void {
    assign(this.status, "textContent", status.text);
    classed(this.status, "lw-busy", status.busy);
  }

  private updateModes(s: Scene | null): void {
    const ab = s !== null && isAB(s.state);
    assign(this.modes, "hidden", !ab);
    if (!s || !ab) return;
    const [a, b] = modelNames(s.state);
    const labels: [Mode, string][] = [
      ["a", `A: ${a}`],
      ["b", `B: ${b}`],
      ["diff", "diff B − A"],
    ];
    if (this.modes.childElementCount !== labels.length) {
      this.modes.replaceChildren();
      for (const [value] of labels) {
        const button = element(this.doc, "button", "lw-mode", this.modes);
        button.type = "button";
        button.dataset.mode = value;
      }
    }
    labels.forEach(([value, label], i) => {
      const button = this.modes.children[i] as HTMLButtonElement;
      assign(button, "textContent", label);
      assign(button, "title", label);
      attribute(button, "aria-pressed", String(value === effectiveMode(s)));
    });
  }

  private updateStatistics(s: Scene | null): void {
    const offered = s ? choices(s) : [];
    const current = s ? shown(s)?.key : undefined;
    const keys = offered.map((c) => c.key).join("|");
    if (this.stats.dataset.keys !== keys) {
      this.stats.dataset.keys = keys;
      this.stats.replaceChildren();
      for (const choice of offered) {
        const button = element(this.doc, "button", "lw-stat", this.stats);
        button.type = "button";
        button.textContent = choice.label;
        button.title = statisticTitle(choice.label, choice.units, choice.note);
        button.dataset.statistic = choice.key;
      }
    }
    for (const button of Array.from(this.stats.children) as HTMLButtonElement[]) {
      attribute(button, "aria-pressed", String(button.dataset.statistic === current));
    }
  }

  dispose(): void {
    this.disposer.dispose();
  }
}

function group(doc: Document, parent: HTMLElement, className: string, label: string): HTMLDivElement {
  const node = element(doc, "div", className, parent);
  node.setAttribute("role", "group");
  node.setAttribute("aria-label", label);
  return node;
}
