const units: [Intl.RelativeTimeFormatUnit, number][] = [
  ['day', 86_400_000],
  ['hour', 3_600_000],
  ['minute', 60_000],
];
const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });
const absolute = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' });

/** "5 minutes ago", "in 2 days"; "just now" under a minute. */
export function ago(at: number | null, now = Date.now()): string {
  if (at === null) return 'never';
  const delta = at - now;
  for (const [unit, ms] of units)
    if (Math.abs(delta) >= ms) return relative.format(Math.round(delta / ms), unit);
  return 'just now';
}

const day = new Intl.DateTimeFormat('en', { dateStyle: 'medium' });

export function dateTime(at: number): string {
  return absolute.format(at);
}

export function date(at: number): string {
  return day.format(at);
}

export function percent(value: number | null): string {
  return value === null ? 'n/a' : `${Math.round(value * 100)}%`;
}

export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
}
