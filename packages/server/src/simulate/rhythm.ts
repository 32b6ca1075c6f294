/**
 * What the simulated devices measure, and how their readings follow the time of day: each field is a sine over
 * the hour of the day (local time, peaking at `peakHour`) plus Gaussian noise, so a fleet left running for a
 * day shows the shape a real one has (heating in the afternoon, pumps in the morning, power in the evening).
 * Pure: the time and the random source are passed in.
 */

/** One measured quantity of a device model. */
export interface Field {
  readonly name: string;
  readonly mean: number;
  /** Half the swing between the daily low and high. */
  readonly amplitude: number;
  /** Hour of the day (0–24, local time) of the daily high. */
  readonly peakHour: number;
  /** Standard deviation of the noise added to each reading. */
  readonly noise: number;
  readonly decimals: number;
  /** Readings never go below this (a flow or a power is not negative). */
  readonly min?: number;
}

/** A kind of simulated device: its group in the fleet, its hardware id, its factory firmware, what it measures. */
export interface DeviceModel {
  readonly name: string;
  readonly group: string;
  readonly hardwareId: string;
  readonly firmware: { readonly version: string; readonly securityVersion: number };
  readonly fields: readonly Field[];
}

export const deviceModels: readonly DeviceModel[] = [
  {
    name: 'thermostat',
    group: 'buildings',
    hardwareId: 'sim-thermostat-v1',
    firmware: { version: '2.3.1', securityVersion: 4 },
    fields: [
      { name: 'temperature', mean: 21, amplitude: 2.5, peakHour: 15, noise: 0.3, decimals: 1 },
      { name: 'humidity', mean: 45, amplitude: 8, peakHour: 5, noise: 1.5, decimals: 0, min: 0 },
    ],
  },
  {
    name: 'pump',
    group: 'pumps',
    hardwareId: 'sim-pump-v2',
    firmware: { version: '1.4.2', securityVersion: 3 },
    fields: [
      { name: 'flow', mean: 120, amplitude: 60, peakHour: 8, noise: 6, decimals: 1, min: 0 },
      { name: 'pressure', mean: 3.2, amplitude: 0.6, peakHour: 8, noise: 0.05, decimals: 2, min: 0 },
    ],
  },
  {
    name: 'meter',
    group: 'meters',
    hardwareId: 'sim-meter-v1',
    firmware: { version: '5.0.7', securityVersion: 7 },
    fields: [
      { name: 'power', mean: 2.4, amplitude: 1.6, peakHour: 19, noise: 0.2, decimals: 2, min: 0 },
      { name: 'voltage', mean: 230, amplitude: 2, peakHour: 4, noise: 0.8, decimals: 1 },
    ],
  },
];

/** The model of the fleet's `index`-th device (0-based): the models take turns. */
export function modelOf(index: number): DeviceModel {
  const model = deviceModels[index % deviceModels.length];
  if (!model) throw new Error('no device models');
  return model;
}

/** The hour of the day, 0 ≤ h < 24, local time, with minutes and seconds as a fraction. */
export function hourOfDay(at: number): number {
  const d = new Date(at);
  return d.getHours() + d.getMinutes() / 60 + d.getSeconds() / 3600;
}

/** A standard normal sample (Box–Muller) from a uniform source on [0, 1). */
export function gaussian(random: () => number): number {
  const u = 1 - random(); // (0, 1]: log(0) is not a number
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** The field's expected value at this hour of the day, without noise. */
export function dailyMean(field: Field, hour: number): number {
  return field.mean + field.amplitude * Math.cos((2 * Math.PI * (hour - field.peakHour)) / 24);
}

/** One reading of the field at `at`: the daily rhythm plus noise, rounded to the field's precision. */
export function reading(field: Field, at: number, random: () => number): number {
  const raw = dailyMean(field, hourOfDay(at)) + field.noise * gaussian(random);
  const bounded = field.min === undefined ? raw : Math.max(field.min, raw);
  const scale = 10 ** field.decimals;
  return Math.round(bounded * scale) / scale;
}

/** One telemetry message of a device: every field of its model at `at`. */
export function telemetryOf(model: DeviceModel, at: number, random: () => number): Record<string, number> {
  const out: Record<string, number> = { ts: at };
  for (const field of model.fields) out[field.name] = reading(field, at, random);
  return out;
}
