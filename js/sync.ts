// The edit protocol, view side. Two directions, never mixed:
//
// - The user's typing travels to the kernel as messages, {type: "edit", view, edit, text}, where
//   `edit` numbers this view's edits. A keystroke after a quiet spell is sent at once; keystrokes
//   within `debounceMs` of each other are merged and the newest text goes when they pause. Only one
//   edit is in flight per view: while the kernel works on it, typing accumulates and only the
//   newest text is sent next. The kernel answers every edit, done or failed, with
//   {type: "edit_done", view, edit}.
// - The `text` trait flows from the kernel to the view: the text the kernel holds, whoever set it.
//   A view shows it whenever its own user has nothing the kernel has not finished with, so text
//   set from Python appears at once, and typing in progress is never overwritten (it is sent next,
//   and then it is the kernel's text).
//
// Comm messages arrive in the order the kernel sent them, and the kernel handles messages one at a
// time, so there are no revisions to compare: "pending" is the only state that decides.

export interface Scheduler {
  set(fn: () => void, ms: number): unknown;
  clear(handle: unknown): void;
}

export const browserScheduler: Scheduler = {
  set: (fn, ms) => setTimeout(fn, ms),
  clear: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** Pause after a keystroke before sending: long enough to merge a burst (auto-repeat, a paste
 * arriving as several events), short enough that one keystroke reaches the kernel at once. */
export const DEBOUNCE_MS = 25;

export interface EditMessage {
  type: "edit";
  view: string;
  edit: number;
  text: string;
}

export interface EditDoneMessage {
  type: "edit_done";
  view: string;
  edit: number;
}

export function isEditDone(message: unknown, view: string): message is EditDoneMessage {
  const m = message as Partial<EditDoneMessage> | null;
  return !!m && typeof m === "object" && m.type === "edit_done" && m.view === view && Number.isSafeInteger(m.edit);
}

/** The edit of this view a kernel message says is done: an edit_done message, or the answer an
 * update carries ({type: "update", done: {view, edit}}); null for anything else. */
export function editDone(message: unknown, view: string): number | null {
  if (isEditDone(message, view)) return message.edit;
  const m = message as { type?: unknown; done?: unknown } | null;
  if (!m || typeof m !== "object" || m.type !== "update") return null;
  const done = m.done as Partial<EditDoneMessage> | null | undefined;
  return done && typeof done === "object" && done.view === view && Number.isSafeInteger(done.edit) ? (done.edit as number) : null;
}

export class EditSync {
  /** Edits made in this view's text box. */
  private typed = 0;
  /** Newest edit sent to the kernel. */
  private sent = 0;
  /** Newest edit the kernel has finished with (successfully or not). */
  private done = 0;
  private text = "";
  private timer: unknown = null;

  constructor(
    private readonly send: (text: string, edit: number) => void,
    private readonly debounceMs = DEBOUNCE_MS,
    private readonly scheduler: Scheduler = browserScheduler,
  ) {}

  /** The user typed: send now if all is quiet, else once the typing pauses. */
  input(text: string): void {
    this.text = text;
    this.typed += 1;
    const quiet = this.timer === null;
    if (!quiet) this.scheduler.clear(this.timer);
    if (quiet) this.flush();
    this.timer = this.scheduler.set(() => {
      this.timer = null;
      this.flush();
    }, this.debounceMs);
  }

  /** The kernel finished `edit` (one of ours): send what was typed meanwhile. */
  finished(edit: number): void {
    if (edit > this.sent || edit <= this.done) return; // not an answer to anything in flight
    this.done = edit;
    if (this.timer === null) this.flush();
  }

  /** The box holds typing the kernel has not finished with: kernel text must not replace it. */
  get pending(): boolean {
    return this.typed > this.done;
  }

  private flush(): void {
    if (this.sent > this.done || this.typed <= this.sent) return;
    this.sent = this.typed;
    this.send(this.text, this.typed);
  }

  dispose(): void {
    if (this.timer !== null) this.scheduler.clear(this.timer);
    this.timer = null;
  }
}
