const priorityNames = ['', 'Min', 'Low', 'Normal', 'High', 'Urgent'] as const;

/** "Urgent", "High", … for priorities 1–5. */
export function priorityName(priority: number): string {
  return priorityNames[priority] ?? `Priority ${priority}`;
}

/** A local calendar day, for grouping. */
export function dayKey(date: Date): string {
  return `${date.getFullYear()}-${date.getMonth() + 1}-${date.getDate()}`;
}

const weekday = new Intl.DateTimeFormat(undefined, { weekday: 'long', month: 'long', day: 'numeric' });
const withYear = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'long', day: 'numeric' });
const clock = new Intl.DateTimeFormat(undefined, { hour: 'numeric', minute: '2-digit' });
const full = new Intl.DateTimeFormat(undefined, { dateStyle: 'full', timeStyle: 'medium' });

/** "Today", "Yesterday", "Monday, November 24", or a full date for another year. */
export function dayLabel(date: Date, now: Date = new Date()): string {
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const day = new Date(date.getFullYear(), date.getMonth(), date.getDate());
  const days = Math.round((today.getTime() - day.getTime()) / 86_400_000);
  if (days === 0) return 'Today';
  if (days === 1) return 'Yesterday';
  return date.getFullYear() === now.getFullYear() ? weekday.format(date) : withYear.format(date);
}

export function timeLabel(date: Date): string {
  return clock.format(date);
}

export function fullTimeLabel(date: Date): string {
  return full.format(date);
}

/** True for absolute http(s) URLs: the only links the page renders. */
export function isHttpUrl(value: string | null | undefined): value is string {
  if (value === null || value === undefined || !URL.canParse(value)) return false;
  const { protocol } = new URL(value);
  return protocol === 'http:' || protocol === 'https:';
}
