// The widget's model: the Python LensWidget's traits, one to one. lens_widget/constants.json lists
// them for both languages; MODEL_KEYS holds this interface to that list (js/model.test.ts), and the
// compiler holds MODEL_KEYS to this interface.

import type { Payload, Vocabulary } from "./payload";
import type { Mode } from "./picture";
import type { RoleRange } from "./roles";

/** A pinned item: a token, or a set of tokens whose probabilities add up (lens_widget/pins.py). */
export interface PinnedItem {
  label: string;
  ids: number[];
  words: string[];
  tokens: string[];
}

/** A message of a chat widget's conversation (lens_widget/chat.py). */
export interface ChatMessage {
  role: string;
  content: string;
}

/** "fixed": one colour scale per statistic for every lens, model and picture; "view": each picture's own range. */
export type ScaleMode = "fixed" | "view";

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
  pins: PinnedItem[];
  instance: string;
  color_scale: ScaleMode;
  /** Show the residual stream after each attention as a row ("3.attn") under its layer. */
  sublayers: boolean;
  /** [start, end, row]: text the model wrote, in UTF-16 units as token spans, from that row's prediction (num_layers: the output). */
  generated: number[][];
  /** Whether the kernel is generating now. */
  generating: boolean;
  /** The conversation rendered into `text` (chat widgets; the view does not read it). */
  messages: ChatMessage[];
  /** Whose each part of `text` is, ordered and disjoint, in UTF-16 units as token spans. */
  roles: RoleRange[];
}

export const MODEL_KEYS = [
  "text",
  "statistic",
  "diff_statistic",
  "mode",
  "token_range",
  "layer_stride",
  "lens",
  "lens_options",
  "snapshot",
  "vocabulary",
  "error",
  "remote_status",
  "pins",
  "instance",
  "color_scale",
  "sublayers",
  "generated",
  "generating",
  "messages",
  "roles",
] as const satisfies readonly (keyof Model)[];

/** Compiles only while MODEL_KEYS names every key of Model. */
const everyKey: Exclude<keyof Model, (typeof MODEL_KEYS)[number]> extends never ? true : never = true;
void everyKey;
