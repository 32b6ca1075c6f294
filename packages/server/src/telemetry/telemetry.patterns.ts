import { api, BulwarkError, deviceIdProblem, DEVICE_TOPIC_ROOT } from '@bulwark/protocol';
import { isValidFilter, levelsMatch } from '../policy/index.ts';

const { RETENTION_MIN_MS, RETENTION_MAX_MS } = api.telemetry;

/**
 * Why a pattern cannot be stored, or undefined: a valid MQTT filter [MQTT-4.7.1-2], [MQTT-4.7.1-3] under a
 * device's topics, `devices/+/…` or `devices/<id>/…` (the store keeps device messages only).
 */
export function patternProblem(pattern: string): string | undefined {
  if (pattern.length > 256) return 'a pattern is at most 256 characters';
  if (!isValidFilter(pattern)) return `"${pattern}" is not a valid MQTT topic filter`;
  const [root, device, ...rest] = pattern.split('/');
  if (root === DEVICE_TOPIC_ROOT && device === '#')
    return `"${pattern}" must name a device level (+ or an id) before #`;
  if (root !== DEVICE_TOPIC_ROOT || device === undefined || rest.length === 0)
    return `"${pattern}" is not under devices/+/… or devices/<id>/…`;
  if (device !== '+' && deviceIdProblem(device) !== undefined)
    return `"${device}" in "${pattern}" is not a device id`;
  return undefined;
}

export function validPattern(pattern: string): string {
  const problem = patternProblem(pattern);
  if (problem) throw new BulwarkError('validation_failed', problem);
  return pattern;
}

export function validRetention(retentionMs: number): number {
  if (!Number.isSafeInteger(retentionMs) || retentionMs < RETENTION_MIN_MS || retentionMs > RETENTION_MAX_MS)
    throw new BulwarkError('validation_failed', 'retention must be from 1 minute to 10 years');
  return retentionMs;
}

/** A stored pattern as the matcher needs it. */
export interface PatternRule {
  pattern: string;
  retentionMs: number;
}

interface CompiledRule {
  pattern: string;
  retentionMs: number;
  levels: readonly string[];
}

const PREFIX = `${DEVICE_TOPIC_ROOT}/`;

/**
 * The patterns compiled for the broker's hot path: a topic outside `devices/` is answered without
 * allocating; one under it is split once and matched against each rule. Of several matching patterns the
 * one with the longest retention wins (a message is stored once, kept as long as any pattern asks).
 */
export interface PatternMatcher {
  readonly size: number;
  /** The pattern a topic is stored under, or undefined. */
  match(topic: string): string | undefined;
}

export function compilePatterns(rules: readonly PatternRule[]): PatternMatcher {
  const compiled: CompiledRule[] = rules
    .map((r) => ({ pattern: r.pattern, retentionMs: r.retentionMs, levels: r.pattern.split('/') }))
    .sort((a, b) => b.retentionMs - a.retentionMs || (a.pattern < b.pattern ? -1 : 1));
  return {
    size: compiled.length,
    match(topic) {
      if (!topic.startsWith(PREFIX)) return undefined;
      const levels = topic.split('/');
      for (const rule of compiled) if (levelsMatch(rule.levels, levels)) return rule.pattern;
      return undefined;
    },
  };
}

/** Does a topic filter given to a query match this topic? (The filter validated by the caller.) */
export function filterMatches(filter: string, topic: string): boolean {
  return levelsMatch(filter.split('/'), topic.split('/'));
}
