import { describe, expect, it } from "vitest";
import { VIEW_TRAITS } from "./constants";
import { MODEL_KEYS } from "./model";

describe("Model", () => {
  it("has exactly the traits the Python widget syncs, in constants.json's order", () => {
    expect([...MODEL_KEYS]).toEqual([...VIEW_TRAITS]);
  });
});
