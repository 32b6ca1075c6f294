/** Where notifications go: an HTTPS endpoint (Standard Webhooks) or a syslog collector (RFC 5424/5425). */
export const channelKinds = ['webhook', 'syslog'] as const;
export type ChannelKind = (typeof channelKinds)[number];

/** `json`: the audit entry as the webhook body. `rfc5424`: JSON data as the syslog MSG. `cef`: a CEF line. */
export const channelFormats = ['json', 'rfc5424', 'cef'] as const;
export type ChannelFormat = (typeof channelFormats)[number];

export const syslogTransports = ['tls', 'tcp'] as const;
export type SyslogTransport = (typeof syslogTransports)[number];

/** The one severity scale (protocol's). */
export { severities, type Severity } from '@bulwark/protocol';
import type { Severity } from '@bulwark/protocol';

export interface ChannelFilter {
  /** Globs over event types: `alert.*`, `response.*`, `*`. */
  types: string[];
  /** Only for events that carry `data.severity`; others pass. */
  minSeverity?: Severity | undefined;
}

export const defaultFilter: ChannelFilter = { types: ['alert.*', 'response.*'] };

export interface ChannelSettings {
  /** Syslog only. */
  transport?: SyslogTransport | undefined;
  /** Syslog facility 0-23 (default 10, authpriv). */
  facility?: number | undefined;
  /** PEM of the CA (or self-signed certificate) the receiver's TLS certificate must chain to. */
  ca?: string | undefined;
}

export interface ChannelStatus {
  /** Consecutive failed attempts of the entry at the head of the channel (0 when healthy). */
  attempts: number;
  failing: boolean;
  lastError: string | null;
  nextAttemptAt: number | null;
  lastDeliveredAt: number | null;
  /** Audit entries after the cursor (matching or not): how far behind the channel is. */
  lag: number;
}

export interface Channel {
  id: string;
  name: string;
  kind: ChannelKind;
  format: ChannelFormat;
  target: string;
  settings: ChannelSettings;
  filter: ChannelFilter;
  enabled: boolean;
  /** The last audit-log seq delivered or skipped by the filter. */
  cursor: number;
  createdAt: number;
  updatedAt: number;
  status: ChannelStatus;
}

/** What one delivery carries: an audit entry, or a synthetic test message (seq 0). */
export interface NotificationEntry {
  seq: number;
  ts: number;
  type: string;
  actor: string;
  subject: string | null;
  data: Record<string, unknown>;
  hash: string;
}

/** Per-channel figures for Prometheus (`/metrics`). Counters are since this process started. */
export interface ChannelStats {
  id: string;
  name: string;
  kind: ChannelKind;
  enabled: boolean;
  cursor: number;
  head: number;
  lag: number;
  delivered: number;
  failures: number;
  attempts: number;
  failing: boolean;
  lastError: string | null;
  lastDeliveredAt: number | null;
  /** Whether this node holds the channel's delivery lease. */
  leased: boolean;
}
