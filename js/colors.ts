// Colour scales: one per statistic, from the statistic's own meaning and the data's range.

import { INK, RAMPS } from "./constants";
import type { Bound } from "./statistics";

export interface Scale {
  /** Statistic value → [0, 1] position on the colour ramp (NaN stays NaN; beyond the ends clamps). */
  position(value: number): number;
  min: number;
  max: number;
  log: boolean;
  /** The same for every lens, model and picture (its statistic's bound), not this picture's range. */
  fixed: boolean;
}

// Ramps (lens_widget/constants.json): sequential is perceptually ordered (viridis-like), dark blue →
// yellow; diverging is blue → near-white → red, for differences centred at 0.
const RAMP = RAMPS.sequential;
const DIVERGING = RAMPS.diverging;

export function rampColor(t: number): [number, number, number] {
  return interpolate(RAMP, t);
}

export function cssColor([r, g, b]: [number, number, number]): string {
  return `rgb(${r}, ${g}, ${b})`;
}

/** Black or white, whichever reads better on the colour. */
export function textOn([r, g, b]: [number, number, number]): string {
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  return luminance > INK.light_above_luminance ? INK.on_light : INK.on_dark;
}

function interpolate(ramp: [number, number, number][], t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t)) * (ramp.length - 1);
  const i = Math.min(ramp.length - 2, Math.floor(x));
  const f = x - i;
  const a = ramp[i] as [number, number, number];
  const b = ramp[i + 1] as [number, number, number];
  return [0, 1, 2].map((c) => Math.round((a[c] as number) + ((b[c] as number) - (a[c] as number)) * f)) as [number, number, number];
}

export function divergingColor(t: number): [number, number, number] {
  return interpolate(DIVERGING, t);
}

/**
 * The scale of a statistic over the values shown, by its kind (lens_widget/statistics.py):
 * "probability" spans [0, 1]; "rank" is logarithmic from 1; "sequential" and "divergence" run from 0
 * to the largest finite value shown; "diverging" (a difference B − A) is symmetric around 0.
 */
export function scaleFor(kind: string, values: Iterable<number>): Scale {
  if (kind === "probability") return { ...linear(0, 1), fixed: true };
  let max = 0;
  for (const v of values) if (Number.isFinite(v) && Math.abs(v) > max) max = Math.abs(v);
  if (kind === "rank") {
    const top = Math.max(2, max);
    const span = Math.log(top);
    return { min: 1, max: top, log: true, fixed: false, position: (v) => (Number.isNaN(v) ? NaN : Math.log(Math.max(1, v)) / span) };
  }
  if (kind === "diverging") return linear(-(max || 1), max || 1);
  return linear(0, max > 0 ? max : 1);
}

/** The top of a fixed scale: 1, ln 2 (the JS divergence's maximum), ln V (a uniform guess over the
 * vocabulary: the entropy's maximum, and "no better than chance" for a cross-entropy or KL) or V. */
export function boundValue(bound: Bound, vocabSize: number): number {
  const v = Math.max(2, vocabSize);
  return bound === "one" ? 1 : bound === "ln_2" ? Math.LN2 : bound === "ln_vocab" ? Math.log(v) : v;
}

/**
 * A scale that is the same for every lens, model and picture of a statistic, so that colours can be
 * compared (lens_widget/export.py draws by the same rule): from 0 (1 for ranks, logarithmic) to the
 * statistic's bound; a difference B − A symmetric around 0 at ± the bound, on a signed logarithmic
 * scale for ranks. Values beyond the top take the top colour.
 */
export function fixedScale(kind: string, bound: Bound, vocabSize: number): Scale {
  const top = boundValue(bound, vocabSize);
  if (kind === "rank") {
    const span = Math.log(top);
    return { min: 1, max: top, log: true, fixed: true, position: (v) => (Number.isNaN(v) ? NaN : Math.log(Math.max(1, v)) / span) };
  }
  if (kind === "diverging" && bound === "vocab") {
    const span = Math.log1p(top);
    const position = (v: number): number => (Number.isNaN(v) ? NaN : 0.5 + (0.5 * Math.sign(v) * Math.log1p(Math.abs(v))) / span);
    return { min: -top, max: top, log: true, fixed: true, position };
  }
  const scale = kind === "diverging" ? linear(-top, top) : linear(0, top);
  return { ...scale, fixed: true };
}

function linear(min: number, max: number): Scale {
  return { min, max, log: false, fixed: false, position: (v) => (Number.isNaN(v) ? NaN : (v - min) / (max - min)) };
}
