// The facts the kernel and the view share, from the one file both read (lens_widget/constants.json,
// bundled at build time; lens_widget/constants.py reads it in Python).

import constants from "../lens_widget/constants.json";

export type Rgb = [number, number, number];

export const WIRE = constants.wire;
export const VIEW_TRAITS: readonly string[] = constants.view_traits;
/** What one generate request from a view may ask for, and what its count starts at. */
export const GENERATION = constants.generation;
export const RAMPS = constants.presentation.ramps as { sequential: Rgb[]; diverging: Rgb[] };
export const PALETTES = constants.presentation.palettes;
export const INK = constants.presentation.ink;
export const LAYOUT = constants.presentation.layout;
export const VISIBLE_TOKENS: Readonly<Record<string, string>> = constants.presentation.visible_tokens;
/** What the legend calls each colour scale mode (the color_scale trait's values). */
export const SCALE_MODES: Readonly<Record<"fixed" | "view", string>> = constants.presentation.scale_modes;
/** One colour per line of the trajectory panel, in turn (matplotlib's tab10), as to_png draws them. */
export const LINES: readonly string[] = constants.presentation.lines;
/** Each chat role's colour in the roles band ("other": a role not listed; the template's text is grey). */
export const ROLE_COLORS: Readonly<Record<string, string> & { other: string }> = constants.presentation.roles;
