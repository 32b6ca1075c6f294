import { describe, expect, it } from 'vitest';
import { dailyMean, deviceModels, gaussian, modelOf, reading, telemetryOf, type Field } from './rhythm.ts';

const temperature: Field = {
  name: 'temperature',
  mean: 20,
  amplitude: 5,
  peakHour: 15,
  noise: 0,
  decimals: 1,
};
/** A time today at `hour`:00 local time. */
const at = (hour: number) => new Date(2026, 5, 1, hour, 0, 0).getTime();

describe('the daily rhythm of simulated readings', () => {
  it('peaks at the peak hour and bottoms out twelve hours later', () => {
    expect(dailyMean(temperature, 15)).toBeCloseTo(25);
    expect(dailyMean(temperature, 3)).toBeCloseTo(15);
    expect(dailyMean(temperature, 9)).toBeCloseTo(20);
    const byHour = Array.from({ length: 24 }, (_, h) => reading(temperature, at(h), () => 0.5));
    expect(Math.max(...byHour)).toBe(byHour[15]);
    expect(Math.min(...byHour)).toBe(byHour[3]);
  });

  it('adds Gaussian noise around the rhythm, rounded to the field and never below its minimum', () => {
    const noisy = { ...temperature, noise: 1 };
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    const values = Array.from({ length: 2000 }, () => reading(noisy, at(15), random));
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const sd = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length);
    expect(mean).toBeCloseTo(25, 0);
    expect(sd).toBeGreaterThan(0.8);
    expect(sd).toBeLessThan(1.2);
    expect(values.every((v) => Math.abs(v * 10 - Math.round(v * 10)) < 1e-9)).toBe(true); // one decimal
    const flow: Field = { name: 'flow', mean: 0, amplitude: 1, peakHour: 0, noise: 5, decimals: 0, min: 0 };
    expect(Array.from({ length: 200 }, () => reading(flow, at(12), random)).every((v) => v >= 0)).toBe(true);
    expect(Number.isFinite(gaussian(() => 0))).toBe(true); // log(0) is never taken
  });

  it('gives each model its fields, and the models take turns in the fleet', () => {
    expect(modelOf(0)).toBe(deviceModels[0]);
    expect(modelOf(deviceModels.length)).toBe(deviceModels[0]);
    expect(Object.keys(telemetryOf(modelOf(1), at(8), () => 0.5))).toEqual(['ts', 'flow', 'pressure']);
  });
});
