// The anywidget view: a text box, toolbar, heatmap canvas, legend and tooltip.
// Host-neutral: it uses only the anywidget model API (get/set/on/off/save_changes/send) and DOM
// under `el`, so it runs in JupyterLab, VS Code, Colab and marimo alike. The canvas is never the
// source of truth: every draw reads the decoded state, so resize, scroll, theme and visibility
// changes simply redraw.

import type { RenderProps } from "@anywidget/types";
import { reversed, scaleFor } from "./colors";
import { type Cell, cellAt, cellRect, contentWidth, draw, drawLegend, makeLayout, scrollToShow } from "./heatmap";
import { applyUpdate, type Payload, PayloadError, statAt, TokenStrings, topAt, type ViewState, type Vocabulary } from "./payload";
import { Retry } from "./retry";
import { EditSync, isEditDone } from "./sync";
import { isDark, palette, watchTheme } from "./theme";
import { fillTooltip } from "./tooltip";
import { visibleToken } from "./tokens";

/** Mirrors the Python LensWidget's traits one to one. */
export interface Model {
  text: string;
  statistic: string;
  layer_stride: number;
  lens: string;
  lens_options: string[];
  update: Payload | Record<string, never>;
  vocabulary: Vocabulary | Record<string, never>;
  error: string;
}

const LABELS: Record<string, string> = {
  entropy: "Entropy",
  cross_entropy: "Cross-entropy",
  forward_kl: "KL(model‖lens)",
  max_probability: "Max prob",
  rank: "Rank",
};

/** A statistic's name with its units, when it has any ("Entropy (nats)", "Rank"). */
export function statisticTitle(name: string, units: string): string {
  const label = LABELS[name] ?? name;
  return units ? `${label} (${units})` : label;
}

const GAVE_UP = "gave up after repeated failures: run the cell again (or reload the page) to redraw.";

/** A fresh id per view, so each view knows which answers are to its own edits. */
function newViewId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** Rows of `state` the stride shows, top to bottom: the output row first. */
export function shownRows(rows: number[], numLayers: number, stride: number): number[] {
  return rows.filter((r) => r === numLayers || r % stride === 0).sort((a, b) => b - a);
}

function el<K extends keyof HTMLElementTagNameMap>(doc: Document, tag: K, className: string, parent?: HTMLElement): HTMLElementTagNameMap[K] {
  const node = doc.createElement(tag);
  node.className = className;
  parent?.appendChild(node);
  return node;
}

function render({ model, el: host }: RenderProps<Model>): () => void {
  const doc = host.ownerDocument;
  const win = doc.defaultView;
  const root = el(doc, "div", "lens-widget", host);
  const toolbar = el(doc, "div", "lw-toolbar", root);
  const statButtons = el(doc, "div", "lw-stats", toolbar);
  statButtons.setAttribute("role", "group");
  statButtons.setAttribute("aria-label", "statistic");
  const strideLabel = el(doc, "label", "lw-stride", toolbar);
  strideLabel.append("layer stride");
  const stride = el(doc, "input", "lw-stride-input", strideLabel);
  stride.type = "range";
  stride.min = "1";
  const strideValue = el(doc, "span", "lw-stride-value", strideLabel);
  const lensLabel = el(doc, "label", "lw-lens", toolbar);
  lensLabel.append("lens");
  const lensSelect = el(doc, "select", "lw-lens-select", lensLabel);
  const status = el(doc, "span", "lw-status", toolbar);
  const textarea = el(doc, "textarea", "lw-text", root);
  textarea.spellcheck = false;
  textarea.rows = 2;
  textarea.placeholder = "Type text to see what every layer predicts…";
  textarea.value = model.get("text");
  const errorBox = el(doc, "div", "lw-message lw-error", root);
  errorBox.setAttribute("role", "alert");
  const notice = el(doc, "div", "lw-message lw-notice", root);
  const scroller = el(doc, "div", "lw-scroll", root);
  scroller.tabIndex = 0;
  // Lumino hosts (Notebook 7, JupyterLab) would take the arrow keys for moving between cells.
  scroller.setAttribute("data-lm-suppress-shortcuts", "true");
  scroller.setAttribute("aria-label", "lens heatmap: arrow keys move between cells, Enter pins, Escape unpins");
  const canvas = el(doc, "canvas", "lw-canvas", scroller);
  const spacer = el(doc, "div", "lw-spacer", scroller);
  const legend = el(doc, "canvas", "lw-legend", root);
  const tooltip = el(doc, "div", "lw-tooltip", root);
  tooltip.hidden = true;

  let state: ViewState | null = null;
  let strings = new TokenStrings(null);
  let lastSeq = -1;
  let selected: Cell | null = null;
  let pinned = false;
  let payloadError = "";
  let vocabularyError = "";
  let frame: number | null = null;
  let scheduled = false;
  /** Width of the widget when it last had one: a host restyling (a theme switch) can report 0. */
  let knownWidth = 0;
  let relayoutTimer: ReturnType<typeof setTimeout> | null = null;
  let relayoutTries = 0;
  const cleanups: (() => void)[] = [];

  const viewId = newViewId();
  const sync = new EditSync((text, edit) => {
    model.send({ type: "edit", view: viewId, edit, text });
    refreshStatus();
  });
  const fullState = new Retry(() => model.send({ type: "request_full" }));
  const vocabularyRetry = new Retry(() => model.send({ type: "request_vocabulary" }));

  /** The kernel's text replaces the box's unless the user has typing the kernel has not finished with. */
  function adoptKernelText(): void {
    const text = model.get("text");
    if (!sync.pending && typeof text === "string" && textarea.value !== text) textarea.value = text;
  }

  function readVocabulary(): void {
    const value = model.get("vocabulary") as unknown;
    try {
      if (!value || typeof value !== "object" || !("size" in value)) throw new PayloadError("it is missing");
      strings = new TokenStrings(value as Vocabulary);
      vocabularyError = "";
      vocabularyRetry.succeeded();
    } catch (error) {
      strings = new TokenStrings(null);
      const why = error instanceof Error ? error.message : String(error);
      vocabularyError =
        `The token strings did not arrive readable (${why}): this host may drop binary data sent with a new ` +
        "widget (a known Colab issue). Cells show token ids until they arrive; ";
      vocabularyRetry.failed();
      vocabularyError += vocabularyRetry.gaveUp ? GAVE_UP : "asking the kernel again…";
    }
  }

  function receive(): void {
    const value = model.get("update") as unknown;
    const header = (value as Partial<Payload> | null)?.header;
    if (value && typeof value === "object" && Object.keys(value).length === 0) return; // nothing sent yet
    if (!header || typeof header !== "object" || !Number.isSafeInteger(header.seq)) {
      fullState.failed();
      payloadError = `The kernel's update did not arrive readable; ${fullState.gaveUp ? GAVE_UP : "asking for the whole state again…"}`;
      refreshStatus();
      return;
    }
    if (header.seq <= lastSeq) return;
    if (header.kind !== "full" && (state === null || header.base !== lastSeq)) {
      fullState.request(); // we missed an update (or have none): ask for the whole state
      return;
    }
    try {
      state = applyUpdate(state, value as Payload);
      lastSeq = header.seq;
      payloadError = "";
      if (header.kind === "full") fullState.succeeded();
    } catch (error) {
      state = null;
      lastSeq = -1;
      fullState.failed();
      const next = fullState.gaveUp ? GAVE_UP : "asking for the whole state again…";
      payloadError = `Could not read the kernel's update (${error instanceof PayloadError ? error.message : String(error)}); ${next}`;
    }
    if (selected && state && (selected.col >= state.nTokens || selected.row >= rowsShown().length)) {
      selected = null;
      pinned = false;
    }
    buildControls();
    refreshStatus();
    schedule();
  }

  function rowsShown(): number[] {
    if (!state) return [];
    return shownRows(state.rows, state.header.num_layers, Math.max(1, model.get("layer_stride")));
  }

  function statisticIndex(): number {
    return state ? state.header.statistics.indexOf(model.get("statistic")) : -1;
  }

  function buildControls(): void {
    const names = state?.header.statistics ?? Object.keys(LABELS);
    if (statButtons.childElementCount !== names.length) {
      statButtons.replaceChildren();
      for (const name of names) {
        const button = el(doc, "button", "lw-stat", statButtons);
        button.type = "button";
        button.textContent = LABELS[name] ?? name;
        button.dataset.statistic = name;
      }
    }
    for (const button of Array.from(statButtons.children) as HTMLButtonElement[]) {
      button.setAttribute("aria-pressed", String(button.dataset.statistic === model.get("statistic")));
    }
    const layers = state?.header.num_layers ?? 1;
    stride.max = String(Math.max(1, layers));
    stride.value = String(model.get("layer_stride"));
    strideValue.textContent = String(model.get("layer_stride"));
    const options = model.get("lens_options") ?? [];
    lensLabel.hidden = options.length < 2;
    if (lensSelect.childElementCount !== options.length) {
      lensSelect.replaceChildren();
      for (const option of options) {
        const node = el(doc, "option", "", lensSelect);
        node.value = option;
        node.textContent = option === "tuned" ? "tuned lens" : "logit lens";
      }
    }
    lensSelect.value = model.get("lens");
  }

  function refreshStatus(): void {
    const missingRows = state !== null && shownRows(rowsFor(state), state.header.num_layers, model.get("layer_stride")).length > rowsShown().length;
    const busy = sync.pending || missingRows || (state !== null && state.header.lens !== model.get("lens"));
    status.classList.toggle("lw-busy", busy);
    status.textContent = busy ? "computing…" : state ? `${state.nTokens} tokens` : "";
    errorBox.textContent = [payloadError, vocabularyError, model.get("error") || ""].filter(Boolean).join("\n");
    notice.textContent = state?.header.notice ?? "";
    root.dataset.busy = String(busy);
  }

  /** Every row the stride asks for (the view may not have them all yet). */
  function rowsFor(s: ViewState): number[] {
    const L = s.header.num_layers;
    const step = Math.max(1, model.get("layer_stride"));
    const rows: number[] = [];
    for (let r = 0; r < L; r += step) rows.push(r);
    rows.push(L);
    return rows;
  }

  /** Coalesce redraw requests into the next animation frame. */
  function schedule(): void {
    if (scheduled) return;
    scheduled = true;
    const run = (): void => {
      scheduled = false;
      frame = null;
      redraw();
    };
    const handle = win?.requestAnimationFrame ? win.requestAnimationFrame(run) : (setTimeout(run, 0) as unknown as number);
    if (scheduled) frame = handle; // a host may run the frame at once
  }

  /** Labels of the rows shown, top to bottom. */
  function labelsShown(s: ViewState): string[] {
    return rowsShown().map((r) => s.rowLabels[s.rows.indexOf(r)] ?? String(r));
  }

  /** The one layout that drawing, hit-testing, the tooltip and the keyboard all use. */
  function currentLayout(s: ViewState) {
    const labels = labelsShown(s);
    return makeLayout(labels.length, s.nTokens, knownWidth || 600, labels);
  }

  function picture() {
    const rows = rowsShown();
    const s = state as ViewState;
    const statIdx = statisticIndex();
    const rowIndex = rows.map((r) => s.rows.indexOf(r));
    const name = model.get("statistic");
    const entropyIdx = s.header.statistics.indexOf("entropy");
    const values: number[] = [];
    for (const i of rowIndex) for (let c = 0; c < s.nTokens; c++) values.push(statAt(s, 0, statIdx, i, c));
    return {
      layout: currentLayout(s),
      scrollLeft: scroller.scrollLeft,
      rowLabels: labelsShown(s),
      value: (row: number, col: number) => statAt(s, 0, statIdx, rowIndex[row] as number, col),
      // Entropy is never missing for a real distribution: NaN there means the logits were not finite.
      invalid: (row: number, col: number) => entropyIdx >= 0 && Number.isNaN(statAt(s, 0, entropyIdx, rowIndex[row] as number, col)),
      top1: (row: number, col: number) => visibleToken(strings.get(topAt(s, 0, rowIndex[row] as number, col).ids[0] ?? 0)),
      inputToken: (col: number) => visibleToken(strings.get(s.tokenIds[col] ?? 0)),
      scale: scaleFor(name, values),
      reversed: reversed(name),
      palette: palette(isDark(root)),
      selected,
      pinned,
    };
  }

  function redraw(): void {
    root.classList.toggle("lw-dark", isDark(root));
    if (scroller.clientWidth > 0) {
      knownWidth = scroller.clientWidth;
      relayoutTries = 0;
    } else if (root.isConnected && relayoutTimer === null && relayoutTries < 10) {
      // No layout right now (a host restyling its theme, a hidden tab): draw at the last known
      // width and look again shortly, rather than keep a made-up width until the next resize.
      relayoutTries += 1;
      relayoutTimer = setTimeout(() => {
        relayoutTimer = null;
        schedule();
      }, 200);
    }
    const ctx = canvas.getContext("2d");
    const legendCtx = legend.getContext("2d");
    if (!state || statisticIndex() < 0) {
      canvas.width = canvas.height = 0;
      root.dataset.rows = "0";
      root.dataset.nTokens = "0";
      return;
    }
    const p = picture();
    const dpr = win?.devicePixelRatio || 1;
    spacer.style.width = `${contentWidth(p.layout)}px`;
    canvas.style.width = `${p.layout.width}px`;
    canvas.style.height = `${p.layout.height}px`;
    canvas.width = Math.round(p.layout.width * dpr);
    canvas.height = Math.round(p.layout.height * dpr);
    if (ctx) {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      draw(ctx, p);
    }
    const legendWidth = p.layout.width;
    legend.style.width = `${legendWidth}px`;
    legend.style.height = "28px";
    legend.width = Math.round(legendWidth * dpr);
    legend.height = Math.round(28 * dpr);
    if (legendCtx) {
      legendCtx.setTransform(dpr, 0, 0, dpr, 0, 0);
      const i = statisticIndex();
      drawLegend(legendCtx, legendWidth, statisticTitle(model.get("statistic"), state.header.units[i] ?? ""), p);
    }
    root.dataset.rows = String(p.layout.rows);
    root.dataset.nTokens = String(state.nTokens);
    root.dataset.statistic = model.get("statistic");
    root.dataset.seq = String(lastSeq);
    root.dataset.selected = selected ? `${selected.row},${selected.col}` : "";
    if (selected) showTooltip(selected);
  }

  function showTooltip(cell: Cell): void {
    const s = state;
    if (!s) return;
    const rows = rowsShown();
    const row = rows[cell.row];
    if (row === undefined || cell.col >= s.nTokens) return hideTooltip();
    const i = s.rows.indexOf(row);
    const statIdx = statisticIndex();
    const ce = statAt(s, 0, s.header.statistics.indexOf("cross_entropy"), i, cell.col);
    const rank = statAt(s, 0, s.header.statistics.indexOf("rank"), i, cell.col);
    const top = topAt(s, 0, i, cell.col);
    const nextId = s.tokenIds[cell.col + 1];
    const invalid = Number.isNaN(statAt(s, 0, s.header.statistics.indexOf("entropy"), i, cell.col));
    fillTooltip(tooltip, {
      invalid,
      rowLabel: s.rowLabels[i] ?? String(row),
      col: cell.col,
      statistic: statisticTitle(model.get("statistic"), ""),
      value: statAt(s, 0, statIdx, i, cell.col),
      units: s.header.units[statIdx] ?? "",
      input: strings.get(s.tokenIds[cell.col] ?? 0),
      next: nextId === undefined || Number.isNaN(ce) ? null : { text: strings.get(nextId), rank, probability: Math.exp(-ce) },
      top: top.ids.map((id, j) => ({ text: strings.get(id), probability: top.probs[j] ?? 0 })),
      pinned,
    });
    const rect = cellRect(currentLayout(s), cell, scroller.scrollLeft);
    const canvasBox = canvas.getBoundingClientRect();
    const rootBox = root.getBoundingClientRect();
    tooltip.hidden = false;
    // Keep the tooltip inside the widget: hosts clip output areas, and the shadow DOM of some hosts
    // (marimo) keeps styles from reaching anything placed outside `el`.
    const tipWidth = tooltip.offsetWidth || 300;
    const tipHeight = tooltip.offsetHeight || 260;
    const cellLeft = canvasBox.left - rootBox.left + rect.x;
    const right = cellLeft + rect.w + 6;
    const width = root.clientWidth || 600;
    const left = right + tipWidth <= width ? right : Math.max(0, cellLeft - tipWidth - 6);
    root.style.minHeight = `${tipHeight + 8}px`;
    const height = Math.max(root.clientHeight, tipHeight + 8);
    const y = Math.min(Math.max(0, canvasBox.top - rootBox.top + rect.y - 20), height - tipHeight - 4);
    tooltip.style.left = `${Math.max(0, left)}px`;
    tooltip.style.top = `${Math.max(0, y)}px`;
  }

  function hideTooltip(): void {
    tooltip.hidden = true;
    root.style.minHeight = "";
  }

  function cellFromEvent(event: MouseEvent): Cell | null {
    if (!state) return null;
    const box = canvas.getBoundingClientRect();
    return cellAt(currentLayout(state), event.clientX - box.left, event.clientY - box.top, scroller.scrollLeft);
  }

  function listen<K extends keyof HTMLElementEventMap>(target: HTMLElement, type: K, fn: (e: HTMLElementEventMap[K]) => void): void {
    target.addEventListener(type, fn as EventListener);
    cleanups.push(() => target.removeEventListener(type, fn as EventListener));
  }

  function on(name: string, fn: () => void): void {
    model.on(name, fn);
    cleanups.push(() => model.off(name, fn));
  }

  listen(textarea, "input", () => {
    sync.input(textarea.value);
    refreshStatus();
  });
  listen(textarea, "blur", adoptKernelText);
  listen(statButtons, "click", (event) => {
    const target = (event.target as HTMLElement).closest("button");
    if (!target?.dataset.statistic) return;
    model.set("statistic", target.dataset.statistic);
    model.save_changes();
    buildControls();
    schedule();
  });
  listen(stride, "input", () => {
    model.set("layer_stride", Number(stride.value));
    model.save_changes();
    selected = null;
    pinned = false;
    hideTooltip();
    buildControls();
    refreshStatus();
    schedule();
  });
  listen(lensSelect, "change", () => {
    model.set("lens", lensSelect.value);
    model.save_changes();
    refreshStatus();
  });
  listen(canvas, "mousemove", (event) => {
    if (pinned) return;
    const cell = cellFromEvent(event);
    if (!cell) {
      selected = null;
      hideTooltip();
    } else if (!selected || cell.row !== selected.row || cell.col !== selected.col) {
      selected = cell;
      showTooltip(cell);
    }
    schedule();
  });
  listen(canvas, "mouseleave", () => {
    if (pinned) return;
    selected = null;
    hideTooltip();
    schedule();
  });
  listen(canvas, "click", (event) => {
    const cell = cellFromEvent(event);
    if (pinned && (!cell || (selected && cell.row === selected.row && cell.col === selected.col))) {
      pinned = false; // a second click on the pinned cell (or outside the grid) unpins
    } else if (cell) {
      selected = cell;
      pinned = true;
    }
    if (selected) showTooltip(selected);
    schedule();
  });
  listen(scroller, "scroll", () => {
    if (selected && !pinned) {
      selected = null;
      hideTooltip();
    }
    schedule();
  });
  listen(scroller, "keydown", (event) => {
    if (!state) return;
    const rows = rowsShown().length;
    if (event.key === "Escape") {
      pinned = false;
      selected = null;
      hideTooltip();
      schedule();
      return;
    }
    const moves: Record<string, [number, number]> = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
    const move = moves[event.key];
    if (event.key === "Enter" && selected) {
      pinned = !pinned;
    } else if (move) {
      const current = selected ?? { row: 0, col: 0 };
      selected = {
        row: Math.min(rows - 1, Math.max(0, current.row + (selected ? move[0] : 0))),
        col: Math.min(state.nTokens - 1, Math.max(0, current.col + (selected ? move[1] : 0))),
      };
      scroller.scrollLeft = scrollToShow(currentLayout(state), selected.col, scroller.scrollLeft);
    } else {
      return;
    }
    // Keys the heatmap used are not also the host's (VS Code's notebook moves between cells).
    event.preventDefault();
    event.stopPropagation();
    if (selected) showTooltip(selected);
    schedule();
  });
  // Typing in the text box, the slider or the selector is the widget's, not the notebook's: VS Code
  // would otherwise run its own commands on it (Delete removes the cell, arrows move between
  // cells). Modifier+Enter still reaches the host, so a cell can be run from the text box.
  listen(root, "keydown", (event) => {
    const target = event.target as HTMLElement | null;
    const control = target?.closest("textarea, input, select, button");
    const runsCell = event.key === "Enter" && (event.shiftKey || event.ctrlKey || event.metaKey);
    if (control && !runsCell) event.stopPropagation();
  });
  const onDocumentKey = (event: KeyboardEvent): void => {
    if (event.key === "Escape" && pinned) {
      pinned = false;
      selected = null;
      hideTooltip();
      schedule();
    }
  };
  doc.addEventListener("keydown", onDocumentKey);
  cleanups.push(() => doc.removeEventListener("keydown", onDocumentKey));

  on("change:update", receive);
  on("change:vocabulary", () => {
    readVocabulary();
    refreshStatus();
    schedule();
  });
  on("change:text", adoptKernelText);
  const onMessage = (message: unknown): void => {
    if (!isEditDone(message, viewId)) return;
    sync.finished(message.edit);
    adoptKernelText();
    refreshStatus();
  };
  model.on("msg:custom", onMessage);
  cleanups.push(() => model.off("msg:custom", onMessage));
  on("change:error", refreshStatus);
  on("change:statistic", () => {
    buildControls();
    schedule();
  });
  on("change:layer_stride", () => {
    buildControls();
    refreshStatus();
    schedule();
  });
  on("change:lens", () => {
    buildControls();
    refreshStatus();
  });
  on("change:lens_options", buildControls);

  cleanups.push(watchTheme(root, schedule));
  if (typeof ResizeObserver !== "undefined") {
    const resize = new ResizeObserver(() => schedule());
    resize.observe(scroller);
    cleanups.push(() => resize.disconnect());
  }
  if (typeof IntersectionObserver !== "undefined") {
    const visible = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && schedule());
    visible.observe(root);
    cleanups.push(() => visible.disconnect());
  }

  readVocabulary();
  buildControls();
  receive();
  if (state === null) fullState.request();
  refreshStatus();
  schedule();

  return () => {
    for (const cleanup of cleanups.splice(0)) cleanup();
    sync.dispose();
    fullState.dispose();
    vocabularyRetry.dispose();
    if (relayoutTimer !== null) clearTimeout(relayoutTimer);
    if (frame !== null) {
      if (win?.cancelAnimationFrame) win.cancelAnimationFrame(frame);
      else clearTimeout(frame);
    }
    root.remove();
  };
}

export default { render };
