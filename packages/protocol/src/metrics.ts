import { z } from 'zod';

const port = z.number().int().min(0).max(65_535);
const count = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** An IPv4/IPv6 address, optionally with a port (`203.0.113.5`, `203.0.113.5:443`, `[2001:db8::1]:443`). */
const destination = z
  .string()
  .max(64)
  .regex(
    /^(\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?|\[?[0-9A-Fa-f:.]{2,45}\]?(:\d{1,5})?)$/,
    'must be an IP address',
  );
const customName = z.string().regex(/^[a-z][a-z0-9_]{0,47}$/, 'custom metric names are a-z 0-9 _');

/**
 * What a device reports about itself on `devices/{id}/metrics` (the device-side behaviours of
 * AWS IoT Device Defender): its network surface and counters since its previous report.
 *
 * @example
 * ```ts
 * const report: DeviceMetricsReport = { ts: Date.now(), listeningTcpPorts: [22, 443], establishedConnections: 3 };
 * client.publish(topics.metrics('pump-17'), JSON.stringify(report));
 * ```
 */
export const deviceMetricsSchema = z
  .object({
    ts: z.number().int().nonnegative().optional(),
    listeningTcpPorts: z.array(port).max(1024).optional(),
    listeningUdpPorts: z.array(port).max(1024).optional(),
    /** Remote addresses the device has connections to (outbound destinations). */
    destinations: z.array(destination).max(1024).optional(),
    establishedConnections: count.optional(),
    /** Counters since the previous report. */
    bytesIn: count.optional(),
    bytesOut: count.optional(),
    packetsIn: count.optional(),
    packetsOut: count.optional(),
    /** Custom metrics: a number, a string, or a set of strings (at most 32). */
    custom: z
      .record(
        customName,
        z.union([z.number().finite(), z.string().max(256), z.array(z.string().max(256)).max(256)]),
      )
      .refine((r) => Object.keys(r).length <= 32, 'at most 32 custom metrics')
      .optional(),
  })
  .strict();
export type DeviceMetricsReport = z.infer<typeof deviceMetricsSchema>;

/** The largest report accepted, in bytes. */
export const DEVICE_METRICS_MAX_BYTES = 64 * 1024;
