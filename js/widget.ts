// The anywidget view: DOM, listeners and wiring. What it draws comes from three places, kept apart:
// the decoded state (receiver.ts: what the kernel sent), the UI state (selection.ts, the mode, the
// scroll position) and the drawing (picture.ts → heatmap.ts, tooltip.ts). Host-neutral: it uses only
// the anywidget model API (get/set/on/off/save_changes/send) and DOM under `el`, so it runs in
// JupyterLab, VS Code, Colab and marimo alike. The canvas is never the source of truth: every draw
// reads the state, so resize, scroll, theme and visibility changes simply redraw.

import type { RenderProps } from "@anywidget/types";
import { downloadCanvas, pictureCanvas } from "./download";
import { caretColumn } from "./columns";
import { type Cell, cellAt, cellRect, contentWidth, draw, drawLegend, makeLayout, scrollToShow, visibleColumns } from "./heatmap";
import { type Payload, pendingCount, type Vocabulary } from "./payload";
import { choices, columnsShown, effectiveMode, isAB, legendTitle, markedCount, type Mode, modelNames, picture, rowIndices, type Scene, shown, tooltip } from "./picture";
import { Receiver } from "./receiver";
import { afterClick, afterHover, afterKey, NOTHING, type Selection, within } from "./selection";
import { title as statisticTitle } from "./statistics";
import { EditSync, editDone, isEditDone } from "./sync";
import { isDark, palette, watchTheme } from "./theme";
import { fillTooltip } from "./tooltip";

export { shownRows } from "./picture";
export { title as statisticTitle } from "./statistics";

/** Mirrors the Python LensWidget's traits one to one. */
export interface Model {
  text: string;
  statistic: string;
  diff_statistic: string;
  mode: Mode;
  token_range: (number | null)[];
  layer_stride: number;
  lens: string;
  lens_options: string[];
  snapshot: Payload | Record<string, never>;
  vocabulary: Vocabulary | Record<string, never>;
  error: string;
  remote_status: string;
}

/** How long a view waits for the kernel to answer its ping before it says it shows a snapshot. A
 * kernel busy with a long cell answers late; the view then leaves snapshot mode. */
export const PING_TIMEOUT_MS = 3000;
/** Quiet time after scrolling or resizing before the view tells the kernel which columns it shows. */
export const VISIBLE_DEBOUNCE_MS = 120;
const CARET_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);

/** A fresh id per view, so each view knows which answers are to its own edits. */
function newViewId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
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
  const modeButtons = el(doc, "div", "lw-modes", toolbar);
  modeButtons.setAttribute("role", "group");
  modeButtons.setAttribute("aria-label", "model shown");
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
  const pngButton = el(doc, "button", "lw-png", toolbar);
  pngButton.type = "button";
  pngButton.textContent = "PNG";
  pngButton.title = "Download the heatmap (every column in the token range) with its labels and legend as a PNG";
  const status = el(doc, "span", "lw-status", toolbar);
  const textarea = el(doc, "textarea", "lw-text", root);
  textarea.spellcheck = false;
  textarea.rows = 2;
  textarea.placeholder = "Type text to see what every layer predicts…";
  textarea.value = model.get("text");
  const errorBox = el(doc, "div", "lw-message lw-error", root);
  const snapshotNote = el(doc, "div", "lw-message lw-snapshot", root);
  snapshotNote.hidden = true;
  errorBox.setAttribute("role", "alert");
  const notice = el(doc, "div", "lw-message lw-notice", root);
  const scroller = el(doc, "div", "lw-scroll", root);
  scroller.tabIndex = 0;
  scroller.setAttribute("aria-label", "lens heatmap: arrow keys move between cells, Enter pins, Escape unpins");
  // Lumino hosts (Notebook 7, JupyterLab) would take the arrow keys for moving between cells.
  scroller.setAttribute("data-lm-suppress-shortcuts", "true");
  const canvas = el(doc, "canvas", "lw-canvas", scroller);
  const spacer = el(doc, "div", "lw-spacer", scroller);
  const legend = el(doc, "canvas", "lw-legend", root);
  const tooltipBox = el(doc, "div", "lw-tooltip", root);
  tooltipBox.hidden = true;

  // --- state ---------------------------------------------------------------------------------
  /** Sends to the kernel; a static page's host may have no channel at all (and throw). */
  function send(message: Record<string, unknown>): void {
    try {
      model.send(message);
    } catch {
      // No kernel: the ping's missing answer puts the view in snapshot mode.
    }
  }
  /** Keeps a view-side choice in the model; a static page cannot save it anywhere, and need not. */
  function commit(): void {
    try {
      model.save_changes();
    } catch {
      // No kernel to save to: the choice still applies to this view.
    }
  }
  const received = new Receiver((message) => send(message));
  /** No kernel has answered this view's ping: it shows a saved picture (nbconvert, nbviewer, an
   * embedded or exported page, a notebook reopened without its kernel). */
  let snapshotMode = false;
  let pingTimer: ReturnType<typeof setTimeout> | null = null;
  /** UI state: never sent to the kernel (switching the mode costs no message). */
  let selection: Selection = NOTHING;
  let mode: Mode = model.get("mode") ?? "a";
  let frame: number | null = null;
  let scheduled = false;
  /** Width of the widget when it last had one: a host restyling (a theme switch) can report 0. */
  let knownWidth = 0;
  let relayoutTimer: ReturnType<typeof setTimeout> | null = null;
  let relayoutTries = 0;
  /** The column range last reported to the kernel ("start,stop"), which sends those columns first. */
  let reported = "";
  let reportTimer: ReturnType<typeof setTimeout> | null = null;
  /** The text cursor's offset after the user's last edit, and whether the heatmap keeps its column in
   * view: until the user scrolls it out of view, and again once they move the cursor. */
  let caret: number | null = null;
  let followCaret = true;
  let caretMoved = false;
  let scrolledByUs = false;
  /** The arrow keys scrolled to the selected cell: that scroll keeps the selection. */
  let scrolledByKeys = false;
  const cleanups: (() => void)[] = [];

  const viewId = newViewId();
  const sync = new EditSync((text, edit) => {
    reportVisible(); // the kernel answers with the columns on screen: let it know them first
    send({ type: "edit", view: viewId, edit, text });
    refreshStatus();
  });

  function scene(): Scene | null {
    const state = received.state;
    if (!state) return null;
    return {
      state,
      strings: received.strings,
      infos: received.infos,
      mode,
      statistic: model.get("statistic"),
      diffStatistic: model.get("diff_statistic") ?? "",
      stride: Math.max(1, model.get("layer_stride")),
      ...columnsShown(model.get("token_range"), state.nTokens),
    };
  }

  /** The one place the selection is reset when what it points at may be gone. */
  function select(next: Selection): void {
    const s = scene();
    selection = s ? within(next, rowIndices(s).length, s.count) : NOTHING;
    if (selection.cell) showTooltip(selection.cell);
    else hideTooltip();
    schedule();
  }

  /** The kernel's text replaces the box's unless the user has typing the kernel has not finished with. */
  function adoptKernelText(): void {
    const text = model.get("text");
    if (!sync.pending && typeof text === "string" && textarea.value !== text) textarea.value = text;
  }

  function receiveUpdate(): void {
    if (received.snapshot(model.get("snapshot"))) select(selection);
    buildControls();
    refreshStatus();
    schedule();
  }

  // --- controls ------------------------------------------------------------------------------
  function buildControls(): void {
    const s = scene();
    const ab = s !== null && isAB(s.state);
    modeButtons.hidden = !ab;
    if (ab && s) {
      const [a, b] = modelNames(s.state);
      const labels: [Mode, string][] = [
        ["a", `A: ${a}`],
        ["b", `B: ${b}`],
        ["diff", "diff B − A"],
      ];
      if (modeButtons.childElementCount !== labels.length) {
        modeButtons.replaceChildren();
        for (const [value] of labels) {
          const button = el(doc, "button", "lw-mode", modeButtons);
          button.type = "button";
          button.dataset.mode = value;
        }
      }
      labels.forEach(([value, label], i) => {
        const button = modeButtons.children[i] as HTMLButtonElement;
        button.textContent = label;
        button.title = label;
        button.setAttribute("aria-pressed", String(value === effectiveMode(s)));
      });
    }
    const offered = s ? choices(s) : [];
    const current = s ? shown(s)?.key : undefined;
    const keys = offered.map((c) => c.key).join("|");
    if (statButtons.dataset.keys !== keys) {
      statButtons.dataset.keys = keys;
      statButtons.replaceChildren();
      for (const choice of offered) {
        const button = el(doc, "button", "lw-stat", statButtons);
        button.type = "button";
        button.textContent = choice.label;
        button.title = statisticTitle(choice.label, choice.units, choice.note);
        button.dataset.statistic = choice.key;
      }
    }
    for (const button of Array.from(statButtons.children) as HTMLButtonElement[]) {
      button.setAttribute("aria-pressed", String(button.dataset.statistic === current));
    }
    const layers = s?.state.header.num_layers ?? 1;
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

  /** Every row the stride asks for (the view may not have them all yet). */
  function rowsWanted(numLayers: number): number {
    const step = Math.max(1, model.get("layer_stride"));
    return Math.ceil(numLayers / step) + 1;
  }

  function refreshStatus(): void {
    const s = scene();
    const missingRows = s !== null && rowsWanted(s.state.header.num_layers) > rowIndices(s).length;
    const otherLens = s !== null && s.state.header.lens !== model.get("lens");
    const remote = snapshotMode ? "" : model.get("remote_status") ?? "";
    const busy = !snapshotMode && (sync.pending || missingRows || otherLens || remote !== "");
    status.classList.toggle("lw-busy", busy);
    const range = !s || s.count === s.state.nTokens ? "" : s.count ? `tokens ${s.first}–${s.first + s.count - 1} of ` : "no tokens in the chosen range of ";
    const saved = snapshotMode && missingRows ? " · only the saved rows" : "";
    const toCome = s ? pendingCount(s.state) : 0;
    const pending = toCome && !snapshotMode ? ` · ${toCome} column${toCome === 1 ? "" : "s"} to come` : "";
    status.textContent = remote ? `${remote}…` : busy ? "computing…" : s ? `${range}${s.state.nTokens} tokens${saved}${pending}` : "";
    errorBox.textContent = [received.payloadError, received.vocabularyError, downloadError, model.get("error") || ""].filter(Boolean).join("\n");
    notice.textContent = s?.state.header.notice ?? "";
    snapshotNote.hidden = !snapshotMode;
    snapshotNote.textContent = snapshotMode
      ? "Snapshot: no kernel is connected, so this is the picture as it was saved. Hover, the statistic " +
        "buttons and the rows already computed still work; run the cell to edit the text again."
      : "";
    textarea.readOnly = snapshotMode;
    lensSelect.disabled = snapshotMode;
    root.dataset.busy = String(busy);
    root.dataset.snapshot = String(snapshotMode);
  }

  // --- drawing -------------------------------------------------------------------------------
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

  function rowLabels(s: Scene): string[] {
    return rowIndices(s).map((i) => s.state.rowLabels[i] ?? String(s.state.rows[i]));
  }

  /** The one layout that drawing, hit-testing, the tooltip and the keyboard all use. */
  function currentLayout(s: Scene) {
    const labels = rowLabels(s);
    return makeLayout(labels.length, s.count, knownWidth || 600, labels);
  }

  let downloadError = "";
  function downloadPicture(): void {
    const s = scene();
    const drawn = s ? pictureCanvas(doc, s, palette(isDark(root)), rowLabels(s), 2) : null;
    const offered = drawn !== null && downloadCanvas(doc, drawn.canvas, "lens-widget.png");
    downloadError = offered ? "" : "Could not make a PNG here (nothing drawn yet, or this host allows no downloads): use widget.to_png(path) in Python.";
    refreshStatus();
  }

  function onScreen(s: Scene): [number, number] {
    // Clamped: right after the text shrank, the scroll position can still be the longer text's.
    const [first, last] = visibleColumns(currentLayout(s), scroller.scrollLeft).map((c) => Math.min(c, s.count));
    return [(first as number) + s.first, (last as number) + s.first];
  }

  /** Tell the kernel which columns are on screen, when that changed. */
  function reportVisible(): void {
    if (reportTimer !== null) clearTimeout(reportTimer);
    reportTimer = null;
    const s = scene();
    if (!s || snapshotMode) return;
    const [start, stop] = onScreen(s);
    const key = `${start},${stop}`;
    if (key === reported) return;
    reported = key;
    send({ type: "visible", view: viewId, start, stop });
  }

  function scheduleReport(): void {
    if (reportTimer !== null) clearTimeout(reportTimer);
    reportTimer = setTimeout(reportVisible, VISIBLE_DEBOUNCE_MS);
  }

  /** Scroll so that the column under the text cursor is in view, if following it. */
  function showCaret(s: Scene, layout: ReturnType<typeof currentLayout>): void {
    if (!caretMoved) return;
    caretMoved = false;
    if (!followCaret || caret === null) return;
    const col = caretColumn(s.state.tokenSpans, s.state.nTokens, caret);
    if (col === null || col < s.first || col >= s.first + s.count) return;
    const next = scrollToShow(layout, col - s.first, scroller.scrollLeft);
    if (Math.abs(next - scroller.scrollLeft) < 0.5) return;
    spacer.style.width = `${contentWidth(layout)}px`; // wide enough to scroll to a new last column
    scrolledByUs = true;
    scroller.scrollLeft = next;
  }

  function measureWidth(): void {
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
  }

  function redraw(): void {
    const dark = isDark(root);
    root.classList.toggle("lw-dark", dark);
    measureWidth();
    const s = scene();
    if (s) showCaret(s, currentLayout(s));
    const p = s ? picture(s, currentLayout(s), scroller.scrollLeft, palette(dark), selection.cell, selection.pinned) : null;
    if (!s || !p) {
      canvas.width = canvas.height = 0;
      root.dataset.rows = "0";
      root.dataset.nTokens = "0";
      return;
    }
    const dpr = win?.devicePixelRatio || 1;
    spacer.style.width = `${contentWidth(p.layout)}px`;
    canvas.style.width = `${p.layout.width}px`;
    canvas.style.height = `${p.layout.height}px`;
    canvas.width = Math.round(p.layout.width * dpr);
    canvas.height = Math.round(p.layout.height * dpr);
    const ctx = canvas.getContext("2d");
    if (ctx) {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      draw(ctx, p);
    }
    const legendWidth = p.layout.width;
    legend.style.width = `${legendWidth}px`;
    legend.style.height = "28px";
    legend.width = Math.round(legendWidth * dpr);
    legend.height = Math.round(28 * dpr);
    const legendCtx = legend.getContext("2d");
    if (legendCtx) {
      legendCtx.setTransform(dpr, 0, 0, dpr, 0, 0);
      drawLegend(legendCtx, legendWidth, legendTitle(s), p);
    }
    root.dataset.rows = String(p.layout.rows);
    root.dataset.nTokens = String(s.state.nTokens);
    root.dataset.statistic = shown(s)?.key ?? "";
    root.dataset.mode = effectiveMode(s);
    root.dataset.seq = String(received.seq);
    root.dataset.selected = selection.cell ? `${selection.cell.row},${selection.cell.col}` : "";
    root.dataset.marked = String(markedCount(s));
    root.dataset.pending = String(pendingCount(s.state));
    if (selection.cell) showTooltip(selection.cell);
    scheduleReport();
  }

  function showTooltip(cell: Cell): void {
    const s = scene();
    const info = s ? tooltip(s, cell, selection.pinned) : null;
    if (!s || !info) return hideTooltip();
    fillTooltip(tooltipBox, info);
    const rect = cellRect(currentLayout(s), cell, scroller.scrollLeft);
    const canvasBox = canvas.getBoundingClientRect();
    const rootBox = root.getBoundingClientRect();
    tooltipBox.hidden = false;
    // Keep the tooltip inside the widget: hosts clip output areas, and the shadow DOM of some hosts
    // (marimo) keeps styles from reaching anything placed outside `el`.
    const tipWidth = tooltipBox.offsetWidth || 300;
    const tipHeight = tooltipBox.offsetHeight || 260;
    const cellLeft = canvasBox.left - rootBox.left + rect.x;
    const right = cellLeft + rect.w + 6;
    const width = root.clientWidth || 600;
    const left = right + tipWidth <= width ? right : Math.max(0, cellLeft - tipWidth - 6);
    root.style.minHeight = `${tipHeight + 8}px`;
    const height = Math.max(root.clientHeight, tipHeight + 8);
    const y = Math.min(Math.max(0, canvasBox.top - rootBox.top + rect.y - 20), height - tipHeight - 4);
    tooltipBox.style.left = `${Math.max(0, left)}px`;
    tooltipBox.style.top = `${Math.max(0, y)}px`;
  }

  function hideTooltip(): void {
    tooltipBox.hidden = true;
    root.style.minHeight = "";
  }

  function cellFromEvent(event: MouseEvent): Cell | null {
    const s = scene();
    if (!s) return null;
    const box = canvas.getBoundingClientRect();
    return cellAt(currentLayout(s), event.clientX - box.left, event.clientY - box.top, scroller.scrollLeft);
  }

  // --- listeners -----------------------------------------------------------------------------
  function listen<K extends keyof HTMLElementEventMap>(target: HTMLElement, type: K, fn: (e: HTMLElementEventMap[K]) => void): void {
    target.addEventListener(type, fn as EventListener);
    cleanups.push(() => target.removeEventListener(type, fn as EventListener));
  }

  function on(name: string, fn: (...args: unknown[]) => void): void {
    model.on(name, fn);
    cleanups.push(() => model.off(name, fn));
  }

  listen(pngButton, "click", downloadPicture);
  listen(textarea, "input", () => {
    caret = textarea.selectionStart;
    caretMoved = true;
    sync.input(textarea.value);
    refreshStatus();
  });
  // Moving the text cursor (a click, the arrow keys) asks the heatmap to follow it again.
  const moveCaret = (): void => {
    caret = textarea.selectionStart;
    followCaret = true;
    caretMoved = true;
    schedule();
  };
  listen(textarea, "click", moveCaret);
  listen(textarea, "keyup", (event) => {
    if (CARET_KEYS.has(event.key)) moveCaret();
  });
  listen(textarea, "blur", adoptKernelText);
  listen(modeButtons, "click", (event) => {
    const target = (event.target as HTMLElement).closest("button");
    if (!target?.dataset.mode) return;
    mode = target.dataset.mode as Mode; // UI state only: no kernel message
    buildControls();
    select(selection);
  });
  listen(statButtons, "click", (event) => {
    const target = (event.target as HTMLElement).closest("button");
    const key = target?.dataset.statistic;
    const s = scene();
    if (!key || !s) return;
    model.set(effectiveMode(s) === "diff" ? "diff_statistic" : "statistic", key);
    commit();
    buildControls();
    select(selection);
  });
  listen(stride, "input", () => {
    model.set("layer_stride", Number(stride.value));
    commit();
    buildControls();
    refreshStatus();
    select(NOTHING);
  });
  listen(lensSelect, "change", () => {
    model.set("lens", lensSelect.value);
    commit();
    refreshStatus();
  });
  listen(canvas, "mousemove", (event) => {
    const next = afterHover(selection, cellFromEvent(event));
    if (next !== selection) select(next);
  });
  listen(canvas, "mouseleave", () => {
    if (!selection.pinned) select(NOTHING);
  });
  listen(canvas, "click", (event) => select(afterClick(selection, cellFromEvent(event))));
  listen(scroller, "scroll", () => {
    if (scrolledByUs) {
      scrolledByUs = false;
    } else {
      // The user scrolled: keep following the cursor only while its column stays in view.
      const s = scene();
      const col = s && caret !== null ? caretColumn(s.state.tokenSpans, s.state.nTokens, caret) : null;
      if (s && col !== null) {
        const [start, stop] = onScreen(s);
        followCaret = col >= start && col < stop;
      }
    }
    const keys = scrolledByKeys;
    scrolledByKeys = false;
    if (selection.cell && !selection.pinned && !keys) select(NOTHING);
    else schedule();
  });
  listen(scroller, "keydown", (event) => {
    const s = scene();
    if (!s) return;
    const next = afterKey(selection, event.key, rowIndices(s).length, s.count);
    if (!next) return;
    // Keys the heatmap used are not also the host's (VS Code's notebook moves between cells).
    event.preventDefault();
    event.stopPropagation();
    const left = next.cell ? scrollToShow(currentLayout(s), next.cell.col, scroller.scrollLeft) : scroller.scrollLeft;
    if (Math.abs(left - scroller.scrollLeft) >= 0.5) {
      scrolledByKeys = true;
      scroller.scrollLeft = left;
    }
    select(next);
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
    if (event.key === "Escape" && selection.pinned) select(NOTHING);
  };
  doc.addEventListener("keydown", onDocumentKey);
  cleanups.push(() => doc.removeEventListener("keydown", onDocumentKey));

  on("change:snapshot", receiveUpdate);
  on("change:vocabulary", () => {
    received.vocabulary(model.get("vocabulary"));
    buildControls();
    refreshStatus();
    schedule();
  });
  on("change:text", adoptKernelText);
  on("msg:custom", (message: unknown, buffers: unknown) => {
    const type = (message as { type?: unknown } | null)?.type;
    if (type === "update") {
      if (received.delta((message as { payload?: unknown }).payload, Array.isArray(buffers) ? buffers : [])) select(selection);
      const done = editDone(message, viewId); // the answer to this view's edit, riding on its delta
      if (done !== null) {
        sync.finished(done);
        adoptKernelText();
      }
      buildControls();
      refreshStatus();
      schedule();
    } else if ((type === "pong" || type === "no_kernel") && (message as { view?: unknown }).view === viewId) {
      // "no_kernel": a host that knows it has none (lens_widget's exported page) says so at once.
      if (pingTimer !== null) clearTimeout(pingTimer);
      pingTimer = null;
      snapshotMode = type === "no_kernel";
      refreshStatus();
    } else if (isEditDone(message, viewId)) {
      sync.finished(message.edit);
      adoptKernelText();
      refreshStatus();
    }
  });
  on("change:error", refreshStatus);
  on("change:remote_status", refreshStatus);
  on("change:mode", () => {
    mode = model.get("mode") ?? mode;
    buildControls();
    select(selection);
  });
  for (const name of ["change:statistic", "change:diff_statistic"]) {
    on(name, () => {
      buildControls();
      select(selection);
    });
  }
  on("change:layer_stride", () => {
    buildControls();
    refreshStatus();
    select(selection);
  });
  on("change:lens", () => {
    buildControls();
    refreshStatus();
  });
  on("change:lens_options", buildControls);
  on("change:token_range", () => {
    refreshStatus();
    select(selection);
  });

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

  received.vocabulary(model.get("vocabulary"));
  receiveUpdate();
  // Is a kernel there? Its answer (or its silence) decides between live and snapshot mode.
  pingTimer = setTimeout(() => {
    pingTimer = null;
    snapshotMode = true;
    refreshStatus();
  }, PING_TIMEOUT_MS);
  send({ type: "ping", view: viewId });
  if (!received.state) received.requestFull();
  refreshStatus();
  schedule();

  return () => {
    for (const cleanup of cleanups.splice(0)) cleanup();
    sync.dispose();
    received.dispose();
    if (relayoutTimer !== null) clearTimeout(relayoutTimer);
    if (pingTimer !== null) clearTimeout(pingTimer);
    if (reportTimer !== null) clearTimeout(reportTimer);
    if (frame !== null) {
      if (win?.cancelAnimationFrame) win.cancelAnimationFrame(frame);
      else clearTimeout(frame);
    }
    root.remove();
  };
}

export default { render };
