import type { HeraldBridge, SettingsPatch, SettingsView } from '@herald/protocol';
import { h } from './dom.js';
import { priorityName } from './format.js';

export interface SettingsViewOptions {
  bridge: HeraldBridge;
  /** Where the dialog is attached; removing its children removes the dialog. */
  host: HTMLElement;
  /** Aborted when the window's view goes away. */
  signal: AbortSignal;
  /** Shows a failure to open the settings (the dialog itself shows failures to save). */
  onError: (message: string) => void;
}

const priorities = ['1', '2', '3', '4', '5'] as const;
type PriorityKey = (typeof priorities)[number];

const minPriorityChoices: [string, string][] = [
  ['1', 'Every notification'],
  ['2', 'Low and above'],
  ['3', 'Normal and above'],
  ['4', 'High and above'],
  ['5', 'Urgent only'],
];

/** The sound name main plays as the OS default (main/toast-policy.ts `systemSound`). */
const systemSound = 'default';
/** The select's value for "no sound" (the setting's `null`). */
const silent = '';

/** The shape the settings patch accepts; the range (00:00–23:59) is checked in main, whose message is shown as is. */
const clockShape = /^\d\d:\d\d$/;

const fieldLabels: Record<string, string> = {
  minPriority: 'Show pop-ups for',
  quietHours: 'Quiet hours',
  'quietHours.start': 'Quiet hours start',
  'quietHours.end': 'Quiet hours end',
  launchAtLogin: 'Launch at login',
  startHidden: 'Start hidden',
  ...Object.fromEntries(priorities.map((p) => [`sounds.${p}`, `Sound for ${priorityName(Number(p))}`])),
};

/**
 * A refused save as a sentence: without the transport's prefix (Electron's invoke puts the channel and the
 * error's name before main's message), and with field paths as the form names them.
 */
export function saveErrorText(error: unknown): string {
  const raw = error instanceof Error ? error.message : String(error);
  const message = raw
    .replace(/^Error invoking remote method '[^']*': (?:\w*Error: )?/, '')
    .replace(/^(?:invalid settings|invalid argument for settings:set): /, '')
    .replace(/(^|; )([A-Za-z]+(?:\.[A-Za-z0-9]+)?): /g, (whole, start: string, path: string) => (path in fieldLabels ? `${start}${fieldLabels[path] ?? path}: ` : whole));
  return `Not saved. ${message}`;
}

/** The fields of the patch whose value differs from what was loaded. */
function changes(next: SettingsView, loaded: SettingsView): SettingsPatch {
  const changed = (Object.keys(next) as (keyof SettingsView)[]).filter((key) => JSON.stringify(next[key]) !== JSON.stringify(loaded[key]));
  return Object.fromEntries(changed.map((key) => [key, next[key]]));
}

/**
 * The header's "Settings" button and the modal dialog it opens: minimum pop-up priority, quiet hours, a sound
 * per priority, launch at login and start hidden. Desktop only: the caller adds it when `getSettings()` gave a
 * view. The dialog is a native modal `<dialog>`, so the rest of the window is inert while it is open, Escape
 * closes it, and focus returns to the button.
 */
export function createSettingsButton(options: SettingsViewOptions): HTMLButtonElement {
  const { bridge, signal } = options;
  const button = h('button', { type: 'button', class: 'button ghost', id: 'settings-open', 'aria-haspopup': 'dialog' }, 'Settings');

  const message = h('p', { class: 'form-message', id: 'settings-message', role: 'alert' });
  const minPriority = h('select', { id: 'settings-min-priority', class: 'select' }, ...minPriorityChoices.map(([value, label]) => h('option', { value }, label)));
  const quiet = h('input', { type: 'checkbox', id: 'settings-quiet' });
  const clockInput = (id: string) =>
    h('input', { type: 'text', id, class: 'clock', inputmode: 'numeric', autocomplete: 'off', maxlength: 5, placeholder: 'HH:MM', 'aria-describedby': 'settings-quiet-hint' });
  const quietStart = clockInput('settings-quiet-start');
  const quietEnd = clockInput('settings-quiet-end');
  const sounds = Object.fromEntries(priorities.map((p) => [p, h('select', { id: `settings-sound-${p}`, class: 'select' })])) as Record<PriorityKey, HTMLSelectElement>;
  const launchAtLogin = h('input', { type: 'checkbox', id: 'settings-launch-at-login' });
  const startHidden = h('input', { type: 'checkbox', id: 'settings-start-hidden' });
  const cancel = h('button', { type: 'button', class: 'button' }, 'Cancel');
  const save = h('button', { type: 'submit', class: 'button primary' }, 'Save');

  const form = h(
    'form',
    { class: 'settings-form', novalidate: true },
    h('h2', { id: 'settings-title' }, 'Settings'),
    message,
    h('div', { class: 'field' }, h('label', { for: 'settings-min-priority' }, 'Show pop-ups for'), minPriority),
    h(
      'fieldset',
      { class: 'group' },
      h('legend', {}, 'Quiet hours'),
      h('label', { class: 'check', for: 'settings-quiet' }, quiet, 'Mute pop-ups every day'),
      h(
        'div',
        { class: 'times' },
        h('label', { for: 'settings-quiet-start' }, 'From'),
        quietStart,
        h('label', { for: 'settings-quiet-end' }, 'To'),
        quietEnd,
      ),
      h('p', { class: 'hint', id: 'settings-quiet-hint' }, 'Local time, HH:MM (24-hour). Urgent notifications still come through.'),
    ),
    h(
      'fieldset',
      { class: 'group' },
      h('legend', {}, 'Sound per priority'),
      h('div', { class: 'sounds' }, ...priorities.flatMap((p) => [h('label', { for: `settings-sound-${p}` }, `${priorityName(Number(p))} (${p})`), sounds[p]])),
    ),
    h(
      'fieldset',
      { class: 'group' },
      h('legend', {}, 'Startup'),
      h('label', { class: 'check', for: 'settings-launch-at-login' }, launchAtLogin, 'Launch at login'),
      h('label', { class: 'check', for: 'settings-start-hidden' }, startHidden, 'Start hidden in the tray'),
    ),
    h('div', { class: 'actions' }, cancel, save),
  );
  const dialog = h('dialog', { class: 'settings', id: 'settings-dialog', 'aria-labelledby': 'settings-title' }, form);
  options.host.append(dialog);

  /** What the dialog was filled from: the patch is the difference to it. */
  let loaded: SettingsView | undefined;
  let opening = false;
  let saving = false;

  const syncQuiet = () => {
    quietStart.disabled = quietEnd.disabled = !quiet.checked;
    if (quiet.checked && quietStart.value === '' && quietEnd.value === '') {
      quietStart.value = '22:00';
      quietEnd.value = '07:00';
    }
  };

  const fill = (view: SettingsView) => {
    loaded = view;
    message.textContent = '';
    minPriority.value = String(view.minPriority);
    quiet.checked = view.quietHours !== null;
    quietStart.value = view.quietHours?.start ?? '';
    quietEnd.value = view.quietHours?.end ?? '';
    syncQuiet();
    for (const p of priorities) {
      const current = view.sounds[p];
      const select = sounds[p];
      // A sound named in the file by hand stays selectable, so saving other fields keeps it.
      const choices = [h('option', { value: systemSound }, 'System sound'), h('option', { value: silent }, 'Silent')];
      if (current !== null && current !== systemSound) choices.push(h('option', { value: current }, current));
      select.replaceChildren(...choices);
      select.value = current ?? silent;
    }
    launchAtLogin.checked = view.launchAtLogin;
    startHidden.checked = view.startHidden;
  };

  /** The form as settings, or the field to fix and why. */
  const read = (): { view: SettingsView } | { field: HTMLElement; problem: string } => {
    let quietHours: SettingsView['quietHours'] = null;
    if (quiet.checked) {
      const start = quietStart.value.trim();
      const end = quietEnd.value.trim();
      if (!clockShape.test(start)) return { field: quietStart, problem: 'Quiet hours start: use HH:MM, for example 22:00.' };
      if (!clockShape.test(end)) return { field: quietEnd, problem: 'Quiet hours end: use HH:MM, for example 07:00.' };
      quietHours = { start, end };
    }
    const soundOf = (p: PriorityKey) => (sounds[p].value === silent ? null : sounds[p].value);
    return {
      view: {
        minPriority: Number(minPriority.value),
        quietHours,
        sounds: { 1: soundOf('1'), 2: soundOf('2'), 3: soundOf('3'), 4: soundOf('4'), 5: soundOf('5') },
        launchAtLogin: launchAtLogin.checked,
        startHidden: startHidden.checked,
      },
    };
  };

  const setSaving = (on: boolean) => {
    saving = on;
    save.disabled = cancel.disabled = on;
    form.setAttribute('aria-busy', String(on));
  };

  const submit = async () => {
    if (saving || loaded === undefined) return;
    const result = read();
    if ('problem' in result) {
      message.textContent = result.problem;
      result.field.focus();
      return;
    }
    const patch = changes(result.view, loaded);
    if (Object.keys(patch).length === 0) {
      dialog.close();
      return;
    }
    message.textContent = '';
    setSaving(true);
    try {
      const saved = await bridge.setSettings(patch);
      if (saved !== null) loaded = saved;
      dialog.close();
    } catch (error) {
      message.textContent = saveErrorText(error);
    } finally {
      setSaving(false);
    }
  };

  const open = async () => {
    if (opening || dialog.open) return;
    opening = true;
    try {
      const view = await bridge.getSettings();
      if (view === null || signal.aborted || !dialog.isConnected) return;
      fill(view);
      dialog.showModal();
      minPriority.focus();
    } catch (error) {
      options.onError(`Could not open the settings: ${error instanceof Error ? error.message : String(error)}`);
    } finally {
      opening = false;
    }
  };

  button.addEventListener('click', () => void open(), { signal });
  quiet.addEventListener('change', syncQuiet, { signal });
  cancel.addEventListener('click', () => dialog.close(), { signal });
  form.addEventListener(
    'submit',
    (event) => {
      event.preventDefault();
      void submit();
    },
    { signal },
  );
  // Escape: closes, unless a save is on its way (its answer decides what the form shows).
  dialog.addEventListener(
    'cancel',
    (event) => {
      if (saving) event.preventDefault();
    },
    { signal },
  );
  dialog.addEventListener('close', () => button.focus(), { signal });
  return button;
}
