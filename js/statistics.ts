// What a statistic is called and how it is drawn. Defined once, in Python
// (lens_widget/statistics.py STATISTIC_INFO), and sent with the vocabulary: nothing here names a
// statistic, so a new one needs no change in the view. A pinned item's probability ("pin:<label>")
// is the one statistic made here, from the item's label.

import type { StatisticInfo } from "./payload";

/** What the view shows in the A/B diff mode: B − A of a single-model statistic, or a pair statistic. */
export type ScaleKind = StatisticInfo["scale"] | "diverging";
export type Bound = NonNullable<StatisticInfo["bound"]>;

/** The saved name of the statistic that colours cells by a pinned item's probability. */
export const PIN_PREFIX = "pin:";

export interface Shown {
  /** The name the choice is saved under: a statistic's, "pin:<label>", or "delta:<either>" for B − A. */
  key: string;
  label: string;
  units: string;
  lowerIsBetter: boolean;
  scale: ScaleKind;
  /** The top of the fixed scale (of |B − A| for a difference). */
  bound: Bound;
  /** What the value is of, when the label alone does not say ("B − A"). */
  note?: string;
}

/** A statistic's info, or a plain one when the kernel did not say (an older kernel, a lost vocabulary). */
export function infoOf(name: string, infos: StatisticInfo[]): StatisticInfo {
  if (name.startsWith(PIN_PREFIX)) {
    return { name, label: `p(${name.slice(PIN_PREFIX.length)})`, units: "", lower_is_better: false, scale: "probability", bound: "one" };
  }
  return infos.find((i) => i.name === name) ?? { name, label: name, units: "", lower_is_better: false, scale: "sequential" };
}

/** The top of a statistic's fixed scale; an info without one (an older kernel) by its scale kind. */
export function boundOf(info: StatisticInfo): Bound {
  return info.bound ?? (info.scale === "probability" ? "one" : info.scale === "rank" ? "vocab" : "ln_vocab");
}

/** A title with its units once: "Entropy (nats)", "Rank", "Δ Entropy (B − A, nats)". */
export function title(label: string, units: string, note = ""): string {
  const detail = [note, units].filter(Boolean).join(", ");
  return detail ? `${label} (${detail})` : label;
}

export function single(name: string, infos: StatisticInfo[]): Shown {
  const info = infoOf(name, infos);
  return { key: name, label: info.label, units: info.units, lowerIsBetter: info.lower_is_better, scale: info.scale, bound: boundOf(info) };
}

/** B − A of a single-model statistic, on a scale centred at 0. */
export function delta(name: string, infos: StatisticInfo[]): Shown {
  const info = infoOf(name, infos);
  return { key: `delta:${name}`, label: `Δ ${info.label}`, units: info.units, note: "B − A", lowerIsBetter: false, scale: "diverging", bound: boundOf(info) };
}

/** The choices of one model: its statistics, then each pinned item's probability. */
export function singleChoices(statistics: string[], pins: string[], infos: StatisticInfo[]): Shown[] {
  return [...statistics, ...pins.map((label) => PIN_PREFIX + label)].map((name) => single(name, infos));
}

/** The choices of the diff mode: the pair statistics (divergences, agreement), then every B − A. */
export function diffChoices(statistics: string[], diff: string[], infos: StatisticInfo[], pins: string[] = []): Shown[] {
  const singles = [...statistics, ...pins.map((label) => PIN_PREFIX + label)];
  return [...diff.map((name) => single(name, infos)), ...singles.map((name) => delta(name, infos))];
}
