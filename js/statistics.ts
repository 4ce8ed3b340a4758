// What a statistic is called and how it is drawn. Defined once, in Python
// (lens_widget/statistics.py STATISTIC_INFO), and sent with the vocabulary: nothing here names a
// statistic, so a new one needs no change in the view.

import type { StatisticInfo } from "./payload";

/** What the view shows in the A/B diff mode: B − A of a single-model statistic, or a pair statistic. */
export type ScaleKind = StatisticInfo["scale"] | "diverging";

export interface Shown {
  /** The name the choice is saved under: a statistic's, or "delta:<statistic>" for B − A. */
  key: string;
  label: string;
  units: string;
  lowerIsBetter: boolean;
  scale: ScaleKind;
  /** What the value is of, when the label alone does not say ("B − A"). */
  note?: string;
}

/** A statistic's info, or a plain one when the kernel did not say (an older kernel, a lost vocabulary). */
export function infoOf(name: string, infos: StatisticInfo[]): StatisticInfo {
  return infos.find((i) => i.name === name) ?? { name, label: name, units: "", lower_is_better: false, scale: "sequential" };
}

/** A title with its units once: "Entropy (nats)", "Rank", "Δ Entropy (B − A, nats)". */
export function title(label: string, units: string, note = ""): string {
  const detail = [note, units].filter(Boolean).join(", ");
  return detail ? `${label} (${detail})` : label;
}

export function single(name: string, infos: StatisticInfo[]): Shown {
  const info = infoOf(name, infos);
  return { key: name, label: info.label, units: info.units, lowerIsBetter: info.lower_is_better, scale: info.scale };
}

/** B − A of a single-model statistic, on a scale centred at 0. */
export function delta(name: string, infos: StatisticInfo[]): Shown {
  const info = infoOf(name, infos);
  return { key: `delta:${name}`, label: `Δ ${info.label}`, units: info.units, note: "B − A", lowerIsBetter: false, scale: "diverging" };
}

/** The choices of the diff mode: the pair statistics (divergences, agreement), then every B − A. */
export function diffChoices(statistics: string[], diff: string[], infos: StatisticInfo[]): Shown[] {
  return [...diff.map((name) => single(name, infos)), ...statistics.map((name) => delta(name, infos))];
}
