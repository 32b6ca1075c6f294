import { BulwarkError } from '@bulwark/protocol';
import { eventTypes } from '../events/index.ts';
import { severities, type ChannelFilter, type NotificationEntry, type Severity } from './channel.types.ts';

const GLOB = /^[a-z0-9_.*]{1,64}$/;

function globToRegExp(glob: string): RegExp {
  const body = glob
    .split('*')
    .map((part) => part.replace(/[.]/g, '\\.'))
    .join('.*');
  return new RegExp(`^${body}$`);
}

/** Checks a filter from an operator: each glob well-formed and matching at least one event type. */
export function validateFilter(input: { types?: string[] | undefined; minSeverity?: string | undefined }) {
  const types = input.types ?? ['alert.*', 'response.*'];
  if (types.length === 0 || types.length > 50)
    throw new BulwarkError('validation_failed', 'filter.types must list 1-50 event type patterns');
  for (const glob of types) {
    if (!GLOB.test(glob))
      throw new BulwarkError(
        'validation_failed',
        `filter type "${glob}" must be an event type or a glob such as alert.* (a-z, 0-9, _ . *)`,
      );
    const re = globToRegExp(glob);
    if (!eventTypes.some((t) => re.test(t)))
      throw new BulwarkError('validation_failed', `filter type "${glob}" matches no event type`);
  }
  if (input.minSeverity !== undefined && !(severities as readonly string[]).includes(input.minSeverity))
    throw new BulwarkError('validation_failed', `filter.minSeverity must be one of ${severities.join(', ')}`);
  const filter: ChannelFilter = { types: [...new Set(types)] };
  if (input.minSeverity !== undefined) filter.minSeverity = input.minSeverity as Severity;
  return filter;
}

export const severityRank = (s: unknown): number =>
  typeof s === 'string' ? (severities as readonly string[]).indexOf(s) : -1;

/** A compiled filter: which entries a channel delivers. */
export function compileFilter(filter: ChannelFilter): (entry: NotificationEntry) => boolean {
  const res = filter.types.map(globToRegExp);
  const min = filter.minSeverity === undefined ? -1 : severityRank(filter.minSeverity);
  return (entry) => {
    if (!res.some((re) => re.test(entry.type))) return false;
    if (min < 0 || entry.data.severity === undefined) return true;
    const rank = severityRank(entry.data.severity);
    // A severity this filter does not know is let through: a filter never silently drops what it cannot judge.
    return rank < 0 || rank >= min;
  };
}
