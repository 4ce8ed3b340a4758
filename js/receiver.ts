// The decoded state: what the kernel has sent, applied in order. No DOM, no UI state.
//
// Two channels (lens_widget/controller.py): the `snapshot` trait, always the whole picture (what a
// saved notebook replays), and deltas sent as messages while the user types. Updates are numbered
// (seq) and each delta names the update it applies to (base), so a view that missed one, or got one
// it cannot read (Colab's widget manager can drop binary buffers), asks for the whole state again,
// through a Retry: one request out at a time, with growing pauses. A snapshot with the seq the view
// already has is the same picture, and is skipped.

import { applyUpdate, fromMessage, type Header, type Payload, PayloadError, type StatisticInfo, TokenStrings, type ViewState, type Vocabulary } from "./payload";
import { Retry } from "./retry";
import type { Scheduler } from "./sync";

export const GAVE_UP = "gave up after repeated failures: run the cell again (or reload the page) to redraw.";

/** How many state changes the receiver remembers the columns of (changedSince). */
const CHANGES_KEPT = 64;

/** A change of state: the columns it changed, [from, to) of the new state; null when anything may
 * have changed (a full or rows update, a state dropped). */
interface Change {
  version: number;
  columns: [number, number] | null;
}

/** The columns an update changed in the state it made (see Change). A "columns" update replaces every
 * column from col_start (and patches col_start - 1, whose next token changed), including the ones a
 * shorter text drops; a "cells" update fills cell_start … cell_end. */
function changedColumns(header: Header, before: ViewState | null): [number, number] | null {
  if (header.kind === "cells") return [header.cell_start ?? header.col_start, header.cell_end ?? header.n_tokens];
  if (header.kind === "columns" && before) return [Math.max(0, header.col_start - 1), Math.max(before.nTokens, header.n_tokens)];
  return null;
}

export class Receiver {
  state: ViewState | null = null;
  strings = new TokenStrings(null);
  /** Every statistic's label, units, direction and scale, as the kernel defines them. */
  infos: StatisticInfo[] = [];
  /** Why the picture may be missing or stale, for the user (empty when all is well). */
  payloadError = "";
  vocabularyError = "";
  /** The seq of the last update that changed more than pending cells (its text, rows or lens): what a
   * column's answer or an attribution depends on, which "cells" updates (the columns computed after
   * the ones on screen) leave as they were. */
  columnsSeq = -1;
  private lastSeq = -1;
  private states = 0;
  private changes: Change[] = [];
  private readonly fullState: Retry;
  private readonly vocabularyRetry: Retry;

  constructor(send: (message: { type: string }) => void, scheduler?: Scheduler) {
    this.fullState = new Retry(() => send({ type: "request_full" }), scheduler);
    this.vocabularyRetry = new Retry(() => send({ type: "request_vocabulary" }), scheduler);
  }

  get seq(): number {
    return this.lastSeq;
  }

  /** Counts the states this receiver has had: it grows each time `state` is replaced. */
  get version(): number {
    return this.states;
  }

  /** The columns of the current state that may differ from those of state `version` (an earlier
   * value of `version`): [from, to), empty when none; null when it cannot say (any column may differ,
   * or that state is too old to know). A view uses it to skip painting when no column on screen
   * changed. */
  changedSince(version: number): [number, number] | null {
    if (version === this.states) return [0, 0];
    const newer = this.changes.filter((c) => c.version > version);
    if (version < 0 || newer.length !== this.states - version) return null;
    let from = Infinity;
    let to = -Infinity;
    for (const { columns } of newer) {
      if (!columns) return null;
      if (columns[0] >= columns[1]) continue;
      from = Math.min(from, columns[0]);
      to = Math.max(to, columns[1]);
    }
    return from < to ? [from, to] : [0, 0];
  }

  private replace(state: ViewState | null, columns: [number, number] | null): void {
    this.state = state;
    this.states += 1;
    this.changes.push({ version: this.states, columns });
    if (this.changes.length > CHANGES_KEPT) this.changes.shift();
  }

  /** Nothing drawable yet: ask for the whole state (once; the Retry keeps it from looping). */
  requestFull(): void {
    this.fullState.request();
  }

  /** Take the `snapshot` trait's value (a full payload); true when the state changed. */
  snapshot(value: unknown): boolean {
    if (value && typeof value === "object" && Object.keys(value).length === 0) return false; // nothing sent yet
    return this.take(value);
  }

  /** Take a delta the kernel sent as a message ({"type": "update", "payload"} and its buffers). */
  delta(payload: unknown, buffers: readonly unknown[]): boolean {
    let value: unknown;
    try {
      value = fromMessage(payload, buffers);
    } catch (error) {
      // The picture we have is still a true older one: keep it, say so, and ask for the whole state.
      this.fullState.failed();
      this.payloadError = `Could not read the kernel's update (${error instanceof Error ? error.message : String(error)}); ${this.next()}`;
      return true;
    }
    return this.take(value);
  }

  private take(value: unknown): boolean {
    const header = (value as Partial<Payload> | null)?.header;
    if (!header || typeof header !== "object" || !Number.isSafeInteger(header.seq)) {
      this.fullState.failed();
      this.payloadError = `The kernel's update did not arrive readable; ${this.next()}`;
      return false;
    }
    if (header.seq < this.lastSeq || (header.seq === this.lastSeq && this.state !== null)) return false;
    if (header.kind !== "full" && (this.state === null || header.base !== this.lastSeq)) {
      this.fullState.request(); // we missed an update (or have none): ask for the whole state
      return false;
    }
    try {
      const before = this.state;
      // Handed over: a "cells" update writes into the arrays rather than copying the whole grid, and
      // nothing keeps the state it replaces.
      const after = applyUpdate(before, value as Payload, { handOver: true });
      this.replace(after, changedColumns(header as Header, before));
      if (header.kind !== "cells") this.columnsSeq = header.seq;
      this.lastSeq = header.seq;
      this.payloadError = "";
      if (header.kind === "full") this.fullState.succeeded();
    } catch (error) {
      return this.unreadable(error);
    }
    return true;
  }

  private unreadable(error: unknown): boolean {
    this.replace(null, null);
    this.lastSeq = -1;
    this.columnsSeq = -1;
    this.fullState.failed();
    const why = error instanceof PayloadError ? error.message : String(error);
    this.payloadError = `Could not read the kernel's update (${why}); ${this.next()}`;
    return true;
  }

  /** Take the `vocabulary` trait's value: token strings and statistic infos. */
  vocabulary(value: unknown): void {
    try {
      if (!value || typeof value !== "object" || !("size" in value)) throw new PayloadError("it is missing");
      this.strings = new TokenStrings(value as Vocabulary);
      const infos = (value as Vocabulary).statistics;
      this.infos = Array.isArray(infos) ? infos : [];
      this.vocabularyError = "";
      this.vocabularyRetry.succeeded();
    } catch (error) {
      this.strings = new TokenStrings(null);
      this.vocabularyRetry.failed();
      const why = error instanceof Error ? error.message : String(error);
      const next = this.vocabularyRetry.gaveUp ? GAVE_UP : "asking the kernel again…";
      this.vocabularyError =
        `The token strings did not arrive readable (${why}): this host may drop binary data sent with a new ` +
        `widget (a known Colab issue). Cells show token ids until they arrive; ${next}`;
    }
  }

  private next(): string {
    return this.fullState.gaveUp ? GAVE_UP : "asking for the whole state again…";
  }

  dispose(): void {
    this.fullState.dispose();
    this.vocabularyRetry.dispose();
  }
}
