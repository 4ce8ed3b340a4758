// The status line and messages, as a pure function of what the view knows: whether it waits for the
// kernel, what the picture covers, and why it may be missing or stale.

import { assign, element } from "./dom";
import { pendingCount } from "./payload";
import { rowIndices, type Scene } from "./picture";
import { rowsWanted } from "./rows";

export interface StatusInput {
  scene: Scene | null;
  snapshotMode: boolean;
  /** The view has typing the kernel has not finished with. */
  typing: boolean;
  /** The layer_stride and lens traits: what the kernel is asked to show. */
  stride: number;
  lens: string;
  /** The remote_status trait: "queued" or "running" while a remote trace is out. */
  remote: string;
  /** Every message for the user, in order (empty ones are left out). */
  errors: string[];
}

export interface Status {
  text: string;
  busy: boolean;
  errors: string;
  notice: string;
  /** Shown when the view has no kernel; empty otherwise. */
  snapshotNote: string;
}

export const SNAPSHOT_NOTE =
  "Snapshot: no kernel is connected, so this is the picture as it was saved. Hover, the statistic " +
  "buttons and the rows already computed still work; run the cell to edit the text again.";

export { rowsWanted } from "./rows";

export function statusOf(input: StatusInput): Status {
  const s = input.scene;
  const live = !input.snapshotMode;
  const missingRows = s !== null && rowsWanted(s.state.header.num_layers, input.stride, s.sublayers) > rowIndices(s).length;
  const otherLens = s !== null && s.state.header.lens !== input.lens;
  const remote = live ? input.remote : "";
  const busy = live && (input.typing || missingRows || otherLens || remote !== "");
  const range = !s || s.count === s.state.nTokens ? "" : s.count ? `tokens ${s.first}–${s.first + s.count - 1} of ` : "no tokens in the chosen range of ";
  const saved = !live && missingRows ? " · only the saved rows" : "";
  const toCome = s ? pendingCount(s.state) : 0;
  const pending = toCome && live ? ` · ${toCome} column${toCome === 1 ? "" : "s"} to come` : "";
  return {
    text: remote ? `${remote}…` : busy ? "computing…" : s ? `${range}${s.state.nTokens} tokens${saved}${pending}` : "",
    busy,
    errors: input.errors.filter(Boolean).join("\n"),
    notice: s?.state.header.notice ?? "",
    snapshotNote: live ? "" : SNAPSHOT_NOTE,
  };
}

/** The messages under the text box: errors, the kernel's notice and the snapshot note. */
export class Messages {
  private readonly errors: HTMLDivElement;
  private readonly snapshot: HTMLDivElement;
  private readonly notice: HTMLDivElement;

  constructor(doc: Document, parent: HTMLElement) {
    const box = (className: string): HTMLDivElement => element(doc, "div", `lw-message ${className}`, parent);
    this.errors = box("lw-error");
    this.errors.setAttribute("role", "alert");
    this.snapshot = box("lw-snapshot");
    this.snapshot.hidden = true;
    this.notice = box("lw-notice");
  }

  show(status: Status): void {
    assign(this.errors, "textContent", status.errors);
    assign(this.notice, "textContent", status.notice);
    assign(this.snapshot, "textContent", status.snapshotNote);
    assign(this.snapshot, "hidden", status.snapshotNote === "");
  }
}
