import { baselineDocumentSchema, type Baseline } from '@bulwark/protocol';
import type { MeasuredLevel } from '../compliance/index.ts';
import { checkIds } from '../compliance/index.ts';
import type { InventoryDevice } from './assets.ts';
import type { RiskDeps } from './risk.service.ts';
import type { OpenAlert } from './register.service.ts';

/**
 * What the register reads from the other modules, as a test sets it: the inventory, the baseline, the latest
 * compliance run's level and statuses, the open alerts. Firmware (releases, deployments) stays real: the
 * register reads it through the firmware door the test builds.
 */
export interface RegisterWorld {
  devices: InventoryDevice[];
  zones: { name: string; securityLevel: number }[];
  conduits: { name: string; from: string; to: string }[];
  dataCategories: { category: string; schemas: string[] }[];
  releases: { name: string; version: string }[] | null;
  baseline: Baseline;
  measured: MeasuredLevel | null;
  alerts: OpenAlert[];
}

export function registerWorld(overrides: Partial<RegisterWorld> = {}): RegisterWorld {
  return {
    devices: [],
    zones: [],
    conduits: [],
    dataCategories: [],
    releases: null,
    baseline: baselineDocumentSchema.parse({ name: 'test' }),
    measured: null,
    alerts: [],
    ...overrides,
  };
}

/** The register's reads over a world the test changes; releases default to the firmware door's list. */
export function registerReads(
  world: RegisterWorld,
  firmware?: { releases: { list(filter: { limit: number }): Promise<{ name: string; version: string }[]> } },
): RiskDeps['register'] {
  const known = new Set<string>(checkIds);
  return {
    inventory: {
      devices: () => Promise.resolve(world.devices),
      zones: () => Promise.resolve(world.zones),
      conduits: () => Promise.resolve(world.conduits),
      dataCategories: () => Promise.resolve(world.dataCategories),
      releases: async () =>
        world.releases ?? (firmware ? await firmware.releases.list({ limit: 100_000 }) : []),
    },
    baseline: () => Promise.resolve(world.baseline),
    checkExists: (id) => known.has(id),
    measuredLevel: () => Promise.resolve(world.measured),
    openAlerts: () => Promise.resolve(world.alerts),
  };
}
