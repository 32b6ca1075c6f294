import type { CompiledSchema } from './transforms.ts';

/**
 * The hot path's view of schemas, links, consents and restrictions: loaded fully at start, kept current by
 * events (local and from other processes through the bus). Every lookup is a Map read.
 */
export interface PrivacyLive {
  /** The schema of a topic (most specific filter); undefined fast when no schema exists. */
  match(topic: string): CompiledSchema | undefined;
  readonly empty: boolean;
  /** The one person linked to the device, else null. */
  subjectOfDevice(deviceId: string): string | null;
  /** The subject's consent for the purpose, or for its nearest ancestor purpose that has a record. */
  consent(subject: string, purpose: string): 'given' | 'withdrawn' | undefined;
  /** GDPR Art. 18: a restricted subject's data is delivered to no one. */
  restricted(subject: string): boolean;
  start(): Promise<void>;
  stop(): void;
}
