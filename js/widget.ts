// The anywidget view, along anywidget's two entry points. `initialize` (store.ts) owns what belongs to
// the widget: what the kernel sent and whether a kernel is there. `render` composes one view from
// small parts that each clean up after themselves: the toolbar, the text box's edit protocol
// (sync.ts), the caret follower, the visible-range reporter, the heatmap board and the tooltip.
// What a view draws comes from the store's decoded state and the view's own UI state (the selection
// and the mode), through pure functions (picture.ts, status.ts); the canvas is never the source of
// truth, so resize, scroll, theme and visibility changes simply redraw. Host-neutral: only the
// anywidget model API and DOM under `el`, so it runs in JupyterLab, VS Code, Colab and marimo alike.

import type { AnyModel, RenderProps } from "@anywidget/types";
import { Board, rowLabels } from "./board";
import { CaretFollower } from "./caret";
import { Disposer } from "./disposer";
import { assign, classed, data, element } from "./dom";
import { downloadCanvas, pictureCanvas, stackCanvases } from "./download";
import { Frames } from "./frames";
import type { Model } from "./model";
import { pendingCount } from "./payload";
import { columnsShown, effectiveMode, isAB, legendTitle, markedCount, type Mode, modelNames, picture, rowIndices, type Scene, shown, tooltip } from "./picture";
import { afterClick, afterHover, afterKey, NOTHING, type Selection, within } from "./selection";
import { Messages, statusOf } from "./status";
import { holdStore, initialize, newId, type Store } from "./store";
import { EditSync, editDone } from "./sync";
import { isDark, type Palette, palette, watchTheme } from "./theme";
import { Panel, type PanelHandlers } from "./panel";
import { Toolbar } from "./toolbar";
import { answerFromState, type ColumnAnswer } from "./trajectory";
import { TooltipBox } from "./tooltip";
import { isAttributionAnswer } from "./attribution";
import { type Explained, Writers } from "./writers";
import { GenerationBar, type GenerationInput } from "./generation";
import type { Picture } from "./heatmap";
import { VisibleReporter } from "./visible";
import { paintInputs, Repaint } from "./repaint";

export type { Model } from "./model";
export { shownRows } from "./picture";
export { title as statisticTitle } from "./statistics";
export { PING_TIMEOUT_MS } from "./store";
export { VISIBLE_DEBOUNCE_MS } from "./visible";

const CARET_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Home", "End", "PageUp", "PageDown"]);
const PLACEHOLDER = "Type text to see what every layer predicts…";
const NO_DOWNLOAD = "Could not make a PNG here (nothing drawn yet, or this host allows no downloads): use widget.to_png(path) in Python.";

/** What the view is showing, from the store's state, the traits and the view's mode. */
function sceneOf(store: Store, model: AnyModel<Model>, mode: Mode): Scene | null {
  const state = store.received.state;
  if (!state) return null;
  const { strings, infos } = store.received;
  const stride = Math.max(1, model.get("layer_stride"));
  const columns = columnsShown(model.get("token_range"), state.nTokens);
  const colorScale = model.get("color_scale") === "view" ? "view" : "fixed";
  const sublayers = model.get("sublayers") === true;
  const marked = { roles: model.get("roles") ?? [], generated: model.get("generated") ?? [] };
  return { state, strings, infos, mode, statistic: model.get("statistic"), diffStatistic: model.get("diff_statistic") ?? "", stride, sublayers, colorScale, ...columns, ...marked };
}

/** Keeps a view-side choice in the model; a static page cannot save it anywhere, and need not. */
function commit(model: AnyModel<Model>, name: "statistic" | "diff_statistic" | "layer_stride" | "lens" | "color_scale" | "sublayers", value: string | number | boolean): void {
  model.set(name, value as never);
  try {
    model.save_changes();
  } catch {
    // No kernel to save to: the choice still applies to this view.
  }
}

/** Keys the heatmap answers (selection.ts's afterKey), and the ones that edit or delete. */
const WIDGET_KEYS = new Set(["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown", "Enter", "Escape", "Delete", "Backspace"]);

/** Whether a keydown inside the widget is the widget's, not the notebook's. VS Code hands every
 * keydown that reaches the webview's window to its keybindings (Delete deletes the cell; with the
 * Jupyter keymap j and k move between cells and d d deletes one), and only stopPropagation keeps a key
 * from it. In the text box, a slider or a selector every key is the control's. Elsewhere (the heatmap,
 * which has focus after a click) its own keys, Delete, Backspace and plain printable keys (letters,
 * digits, space) are kept too, even where the widget does nothing with them: a stray one must not act
 * on the notebook. Modifier+Enter always reaches the host, so a cell still runs from inside the widget,
 * and so do the host's Ctrl/Cmd/Alt shortcuts outside the controls (save, copy, the command palette). */
export function keptFromHost(event: KeyboardEvent): boolean {
  if (runsCell(event)) return false;
  if ((event.target as HTMLElement | null)?.closest?.("textarea, input, select, button")) return true;
  if (WIDGET_KEYS.has(event.key)) return true;
  const printable = [...event.key].length === 1; // key names (Tab, F5, Shift) are longer
  return printable && !event.ctrlKey && !event.metaKey && !event.altKey;
}

/** Shift/Ctrl/Cmd+Enter: the host's "run the cell", never the widget's (plain Enter pins a cell). */
function runsCell(event: KeyboardEvent): boolean {
  return event.key === "Enter" && (event.shiftKey || event.ctrlKey || event.metaKey);
}

function keepWidgetKeys(event: KeyboardEvent): void {
  if (keptFromHost(event)) event.stopPropagation();
}

/** Offer the picture, with the trajectory panel under it, as a PNG download; the message to show
 * when that cannot be done here. */
function downloadPng(doc: Document, s: Scene | null, dark: boolean, panel: Panel): string {
  const drawn = s ? pictureCanvas(doc, s, palette(dark), rowLabels(s), 2) : null;
  const under = panel.root.hidden ? null : panel.canvas;
  return drawn !== null && downloadCanvas(doc, stackCanvases(doc, drawn.canvas, under, 2, doc.defaultView?.devicePixelRatio || 1), "lens-widget.png") ? "" : NO_DOWNLOAD;
}

/** What the view says about its picture as data attributes (for tests and for host styling). */
function drawnData(s: Scene | null, p: Picture | null, selection: Selection, seq: number): Record<string, string> {
  if (!s || !p) return { rows: "0", nTokens: "0" };
  const cell = selection.cell;
  return {
    rows: String(p.layout.rows),
    nTokens: String(s.state.nTokens),
    statistic: shown(s)?.key ?? "",
    mode: effectiveMode(s),
    seq: String(seq),
    marked: String(markedCount(s)),
    selected: cell ? `${cell.row},${cell.col}` : "",
    pending: String(pendingCount(s.state)),
    scale: `${p.scale.min}…${p.scale.max}${p.scale.fixed ? " fixed" : ""}`,
  };
}

/** What a view asks of the kernel for its panel: a column, a pin, an unpin (controller.py answers). */
function kernelAsks(store: Store, view: string): PanelHandlers {
  return {
    request: (col, seq, query) => store.send({ type: "column", view, col, query, seq }),
    pin: (items) => store.send({ type: "pin", view, items }),
    unpin: (label) => store.send({ type: "unpin", view, labels: [label] }),
  };
}

/** The panel follows the selected (or hovered) cell's column, else the last one, as typing goes on
 * (asking again when the text changed, not when pending cells arrived: they leave a column's answer
 * as it was); with no kernel it reads the saved state. */
function paintPanel(panel: Panel, s: Scene | null, selection: Selection, store: Store, width: number, colors: Palette, dpr: number): void {
  const cell = selection.cell;
  const col = !s || !s.count ? null : cell ? cell.col + s.first : s.first + s.count - 1;
  if (store.snapshotMode || col === null) panel.set(s && col !== null ? answerFromState(s.state, col, s.strings) : null);
  else panel.follow(col, store.received.columnsSeq);
  const layer = s && cell ? s.state.rows[rowIndices(s)[cell.row] ?? -1] : undefined;
  const marked = layer === undefined || !s ? null : s.state.rows.indexOf(layer);
  panel.paint(width, (c) => (s && c < s.state.nTokens ? s.strings.get(s.state.tokenIds[c] ?? 0) : ""), marked, colors, dpr);
}

/** What the generation bar offers: every lens row the picture has to write from, and A/B's writers. */
function generationInput(s: Scene | null, generating: boolean, snapshotMode: boolean): GenerationInput {
  generating &&= !snapshotMode; // a page saved while the kernel wrote has no kernel to stop
  if (!s) return { generating, rows: [], names: [], disabled: true };
  const rows = s.state.rows.map((row, i) => ({ row, label: s.state.rowLabels[i] ?? String(row) })).filter((r) => r.row !== s.state.header.num_layers);
  return { generating, rows, names: isAB(s.state) ? modelNames(s.state) : [], disabled: snapshotMode || s.state.nTokens === 0 };
}

/** The session row and token column of a cell of the picture. */
function explainedCell(s: Scene, cell: { row: number; col: number }): Explained | null {
  const row = s.state.rows[rowIndices(s)[cell.row] ?? -1];
  return row === undefined ? null : { row, col: cell.col + s.first };
}

/** The attribution panel follows the picture (asking again for its cell, or closing when the cell is
 * gone), offers the pinned items' tokens, and draws its answer. */
function paintWriters(writers: Writers, s: Scene | null, model: AnyModel<Model>, seq: number, width: number, colors: Palette, dpr: number): void {
  const pins = (model.get("pins") ?? []) as { ids?: number[] }[];
  const ids = [...new Set(pins.flatMap((p) => p.ids ?? []))].slice(0, 24);
  writers.offer(ids.map((id) => ({ id, text: s ? s.strings.get(id) : String(id) })));
  writers.follow(seq, (c) => !!s && c.col < s.state.nTokens && s.state.rows.includes(c.row));
  writers.paint(width, colors, dpr);
}

function render({ model, el: host }: RenderProps<Model>): () => void {
  const doc = host.ownerDocument;
  const { store, release } = holdStore(model);
  const viewId = newId();
  const d = new Disposer();
  const ui = { selection: NOTHING as Selection, mode: (model.get("mode") ?? "a") as Mode, downloadError: "", keysScrolled: false, followWriting: false };
  const root = element(doc, "div", "lens-widget", host);
  const toolbar = new Toolbar(doc, root, {
    mode: (mode) => ((ui.mode = mode), refresh(), select(ui.selection)), // the view's own: no kernel message
    statistic: (key) => {
      const s = scene();
      if (s) commit(model, effectiveMode(s) === "diff" ? "diff_statistic" : "statistic", key);
      refresh(), select(ui.selection);
    },
    stride: (stride) => (commit(model, "layer_stride", stride), refresh(), select(NOTHING)),
    lens: (lens) => (commit(model, "lens", lens), refresh()),
    colorScale: (mode) => (commit(model, "color_scale", mode), refresh(), frames.request()),
    sublayers: (on) => (commit(model, "sublayers", on), refresh(), select(NOTHING)),
    png: () => ((ui.downloadError = downloadPng(doc, scene(), isDark(root), panel)), refresh()),
  });
  const textarea = Object.assign(element(doc, "textarea", "lw-text", root), { spellcheck: false, rows: 3, placeholder: PLACEHOLDER, value: model.get("text") });
  const generation = new GenerationBar(doc, root, {
    generate: (count, row, writer) => store.send({ type: "generate", view: viewId, max_new_tokens: count, row, model: writer }),
    stop: () => store.send({ type: "stop_generation", view: viewId }),
  });
  const messages = new Messages(doc, root);
  const frames = new Frames(doc.defaultView, redraw);
  const heatmap = new Repaint();
  /** Paint everything at the next frame, whether or not what it shows changed: the host may have
   * dropped the canvases' pixels (a resize, an output scrolled away and back, a theme switch). */
  const repaintAll = (): void => {
    heatmap.forget();
    board.forget();
    panel.forget();
    frames.request();
  };
  const board = new Board(doc, root, () => repaintAll());
  const asks = kernelAsks(store, viewId);
  const panel = new Panel(doc, root, asks, () => frames.request());
  const tip = new TooltipBox(doc, root, (id) => asks.pin([id]));
  const writers = new Writers(doc, root, { request: (row, col, token, seq) => store.send({ type: "attribution", view: viewId, row, col, token, seq }) }, () => frames.request());
  /** Open the attribution panel on a cell (a click that pins it, or W); not without a kernel. */
  const explain = (cell: { row: number; col: number } | null): void => {
    const s = scene();
    const at = s && cell && !store.snapshotMode ? explainedCell(s, cell) : null;
    if (at) writers.explain(at, store.received.columnsSeq);
  };
  const caret = new CaretFollower();
  const visible = new VisibleReporter(
    () => (scene() && !store.snapshotMode ? board.onScreen(scene() as Scene) : null),
    (start, stop) => store.send({ type: "visible", view: viewId, start, stop }),
  );
  const sync = new EditSync((text, edit) => {
    visible.report(); // the kernel answers with the columns on screen: let it know them first
    store.send({ type: "edit", view: viewId, edit, text });
    refresh();
  });

  function scene(): Scene | null {
    return sceneOf(store, model, ui.mode);
  }

  /** The one place the selection is reset when what it points at may be gone. */
  function select(next: Selection): void {
    const s = scene();
    ui.selection = s ? within(next, rowIndices(s).length, s.count) : NOTHING;
    showTooltip();
    frames.request();
  }

  function showTooltip(): void {
    const s = scene();
    const cell = ui.selection.cell;
    const info = s && cell ? tooltip(s, cell, ui.selection.pinned) : null;
    if (s && cell && info) tip.show(info, board.cellBox(s, cell, root));
    else tip.hide();
  }

  /** The kernel's text replaces the box's unless the user has typing the kernel has not finished with. */
  function adoptKernelText(): void {
    const text = model.get("text");
    if (!sync.pending && typeof text === "string" && textarea.value !== text) textarea.value = text;
  }

  function refresh(): void {
    const s = scene();
    const snapshotMode = store.snapshotMode;
    toolbar.update({ scene: s, stride: model.get("layer_stride"), lens: model.get("lens"), lensOptions: model.get("lens_options") ?? [], snapshotMode, colorScale: model.get("color_scale") ?? "fixed", sublayers: model.get("sublayers") === true });
    generation.update(generationInput(s, model.get("generating") === true, snapshotMode));
    const { received } = store;
    const errors = [received.payloadError, received.vocabularyError, ui.downloadError, model.get("error") || ""];
    const status = statusOf({ scene: s, snapshotMode, typing: sync.pending, stride: model.get("layer_stride"), lens: model.get("lens"), remote: model.get("remote_status") ?? "", errors });
    toolbar.showStatus(status);
    messages.show(status);
    assign(textarea, "readOnly", snapshotMode);
    data(root, { busy: String(status.busy), snapshot: String(snapshotMode) });
  }

  function redraw(): void {
    const dark = isDark(root);
    classed(root, "lw-dark", dark);
    board.measure();
    const s = scene();
    const left = s ? caret.scrollTo(s, board.layout(s), board.scrollLeft, !sync.pending) : null;
    if (s && left !== null) board.scrollTo(s, left);
    if (s && s.count && ui.followWriting && !ui.selection.pinned) board.scrollToColumn(s, s.count - 1); // the writing, to its last column
    ui.followWriting &&= model.get("generating") === true;
    const p = s ? picture(s, board.layout(s), board.scrollLeft, palette(dark), ui.selection.cell, ui.selection.pinned) : null;
    const dpr = doc.defaultView?.devicePixelRatio || 1;
    const { received } = store;
    const fresh = !s || !p || heatmap.needed(paintInputs(s, p, dpr), received.version, (v) => received.changedSince(v), board.onScreen(s));
    if (!p) heatmap.forget();
    board.paint(p, s ? legendTitle(s) : "", dpr, fresh);
    paintPanel(panel, s, ui.selection, store, s ? board.layout(s).width : 0, palette(dark), dpr);
    paintWriters(writers, s, model, store.received.columnsSeq, s ? board.layout(s).width : 0, palette(dark), dpr);
    data(root, drawnData(s, p, ui.selection, store.received.seq));
    if (s && p) showTooltip();
    if (s && p) visible.schedule();
  }

  d.listen(textarea, "input", () => (caret.typed(textarea.selectionStart), sync.input(textarea.value), refresh()));
  d.listen(textarea, "click", () => (caret.placed(textarea.selectionStart), frames.request()));
  d.listen(textarea, "keyup", (e) => CARET_KEYS.has(e.key) && (caret.placed(textarea.selectionStart), frames.request()));
  d.listen(textarea, "blur", adoptKernelText);
  d.listen(board.canvas, "mousemove", (event) => {
    const next = afterHover(ui.selection, board.cellAt(scene(), event));
    if (next !== ui.selection) select(next);
  });
  d.listen(board.canvas, "mouseleave", () => ui.selection.pinned || select(NOTHING));
  d.listen(board.canvas, "click", (event) => {
    select(afterClick(ui.selection, board.cellAt(scene(), event)));
    if (ui.selection.pinned) explain(ui.selection.cell);
  });
  d.listen(board.scroller, "scroll", () => {
    const s = scene();
    const [start, stop] = s ? board.onScreen(s) : [0, 0];
    caret.scrolled(s, start, stop);
    const byKeys = ui.keysScrolled;
    ui.keysScrolled = false;
    if (ui.selection.cell && !ui.selection.pinned && !byKeys) select(NOTHING);
    else frames.request();
  });
  d.listen(board.scroller, "keydown", (event) => {
    const s = scene();
    if (runsCell(event)) return;
    if (event.key === "w" || event.key === "W") return void (event.stopPropagation(), explain(ui.selection.cell));
    const next = s ? afterKey(ui.selection, event.key, rowIndices(s).length, s.count) : null;
    if (!s || !next) return;
    event.preventDefault(); // keys the heatmap used are not also the host's (VS Code moves between cells)
    event.stopPropagation();
    if (next.cell && board.scrollToColumn(s, next.cell.col)) ui.keysScrolled = true; // its scroll event comes later
    select(next);
  });
  d.listen(root, "keydown", keepWidgetKeys);
  const onEscape = (event: KeyboardEvent): void => void (event.key === "Escape" && ui.selection.pinned && select(NOTHING));
  doc.addEventListener("keydown", onEscape);
  d.add(() => doc.removeEventListener("keydown", onEscape));
  d.add(
    store.subscribe((message) => {
      const m = message as { type?: unknown; view?: unknown } | null;
      if (m?.type === "column" && m.view === viewId) panel.answer(message as ColumnAnswer);
      if (isAttributionAnswer(m) && m.view === viewId) writers.answer(m);
      const done = editDone(message, viewId); // the answer to this view's edit, alone or riding on its delta
      if (done !== null) sync.finished(done);
      if (done !== null) adoptKernelText();
      refresh();
      select(ui.selection);
    }),
  );
  d.on(model, "change:text", adoptKernelText);
  d.on(model, "change:generating", () => void (ui.followWriting ||= model.get("generating") === true)); // however soon it ends
  d.on(model, "change:mode", () => ((ui.mode = model.get("mode") ?? ui.mode), refresh(), select(ui.selection)));
  for (const name of ["error", "remote_status", "lens", "lens_options", "statistic", "diff_statistic", "layer_stride", "token_range", "color_scale", "pins", "sublayers", "generating", "roles", "generated"]) {
    d.on(model, `change:${name}`, () => (refresh(), select(ui.selection)));
  }
  d.add(watchTheme(root, repaintAll));
  d.listen(board.canvas, "contextrestored", repaintAll); // a browser that dropped the 2D context gives it back blank
  if (typeof IntersectionObserver !== "undefined") {
    const seen = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && repaintAll());
    seen.observe(root);
    d.add(() => seen.disconnect());
  }
  store.ping();
  refresh();
  select(NOTHING);
  return () => {
    d.dispose();
    for (const part of [sync, visible, board, toolbar, frames, tip, panel, writers, generation]) part.dispose();
    release();
    root.remove();
  };
}

export default { initialize, render };
