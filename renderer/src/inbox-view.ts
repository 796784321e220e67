import { assertNever, type BridgeState, type ConnectionState, type HeraldBridge, type InboxPage, type Notification, type Unsubscribe } from '@herald/protocol';
import { defaults } from './defaults.js';
import { h } from './dom.js';
import { isFiltered, matchesQuery, noFilters, toQuery, type Filters } from './filters.js';
import { dayKey, dayLabel, timeLabel } from './format.js';
import { renderItem, setDayHeading, setRead } from './item-view.js';
import { createSettingsButton } from './settings-view.js';
import { currentTheme, onSystemThemeChange, toggleTheme } from './theme.js';

export interface InboxViewOptions {
  bridge: HeraldBridge;
  root: HTMLElement;
  /** The bridge's state when the view opens (a desktop bridge announces it only on changes). */
  initialState?: BridgeState;
  /** The header's sign-out button calls this. */
  onSignOut: () => void;
}

/** A listed page; the web bridge marks one served from its offline cache. */
type ListedPage = InboxPage & { cached?: boolean };

const bannerText: Record<ConnectionState, string> = {
  connecting: 'Connecting…',
  connected: 'Connected.',
  reconnecting: 'Connection lost. Reconnecting…',
  offline: 'You are offline. New notifications will arrive when the network is back.',
  'signed-out': 'Signed out. Sign in again to receive notifications.',
};

const priorityChoices: [string, string][] = [
  ['', 'Any priority'],
  ['2', 'Low and above'],
  ['3', 'Normal and above'],
  ['4', 'High and above'],
  ['5', 'Urgent only'],
];

/** The parts of the window that change after it is built. */
interface Ui {
  unread: HTMLElement;
  user: HTMLElement;
  dnd: HTMLElement;
  markAll: HTMLButtonElement;
  theme: HTMLButtonElement;
  banner: HTMLElement;
  toast: HTMLElement;
  topic: HTMLSelectElement;
  filters: HTMLFormElement;
  notice: HTMLElement;
  feed: HTMLElement;
  sentinel: HTMLElement;
  loading: HTMLElement;
  end: HTMLElement;
  list: HTMLElement;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * The history window: newest first, grouped by day, with filters, search, paging by `before`, live arrivals
 * and read state kept in step with every other device. Talks to the bridge only, so the desktop window and
 * the web inbox share it.
 */
export class InboxView {
  /** Settles once the first page is shown (or failed to load). */
  readonly ready: Promise<void>;

  readonly #bridge: HeraldBridge;
  readonly #root: HTMLElement;
  readonly #abort = new AbortController();
  readonly #unsubscribe: Unsubscribe[];
  readonly #observer: IntersectionObserver;

  readonly #items = new Map<number, Notification>();
  readonly #elements = new Map<number, HTMLElement>();
  readonly #topics = new Set<string>();
  #filters: Filters = { ...noFilters };
  /** Bumped on every reload; answers to older requests are dropped. */
  #generation = 0;
  #loading = false;
  #hasMore = false;
  #cached = false;
  #failure: string | undefined;
  #unread = 0;
  #wasConnected = false;
  #lostConnection = false;
  #searchTimer: ReturnType<typeof setTimeout> | undefined;
  #toastTimer: ReturnType<typeof setTimeout> | undefined;

  readonly #ui: Ui;
  /** The header's Settings button, once added (desktop only). */
  readonly #settingsButton: Promise<HTMLButtonElement | undefined>;

  constructor(options: InboxViewOptions) {
    this.#bridge = options.bridge;
    this.#root = options.root;
    this.#ui = this.#build(options.onSignOut);
    this.#observer = new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) void this.#loadMore();
    }, { root: this.#ui.list, rootMargin: '0px 0px 400px 0px' });
    this.#observer.observe(this.#ui.sentinel);

    this.#unsubscribe = [
      this.#bridge.onNotification((item) => this.#arrived(item)),
      this.#bridge.onRead((change) => this.#readChanged(change)),
      this.#bridge.onDeleted((seqs) => this.#deleted(seqs)),
      this.#bridge.onState((state) => this.#stateChanged(state)),
    ];
    if (options.initialState) this.#stateChanged(options.initialState);
    this.ready = this.#reload();
    this.#settingsButton = this.#addSettings();
  }

  destroy(): void {
    for (const unsubscribe of this.#unsubscribe) unsubscribe();
    this.#abort.abort();
    this.#observer.disconnect();
    clearTimeout(this.#searchTimer);
    clearTimeout(this.#toastTimer);
    this.#generation++;
    this.#root.replaceChildren();
    document.title = 'Herald';
  }

  #build(onSignOut: () => void): Ui {
    const signal = this.#abort.signal;
    const unread = h('span', { class: 'unread-count', id: 'unread-count' }, '');
    const user = h('span', { class: 'user', id: 'user-name' });
    const dnd = h('span', { class: 'chip dnd', hidden: true });
    const markAll = h('button', { type: 'button', class: 'button', id: 'mark-all-read' }, 'Mark all read');
    const theme = h('button', { type: 'button', class: 'button ghost', id: 'theme-toggle', 'aria-pressed': String(currentTheme() === 'dark') }, 'Dark theme');
    const signOut = h('button', { type: 'button', class: 'button ghost', id: 'sign-out' }, 'Sign out');
    const header = h('header', { class: 'topbar' }, h('h1', { class: 'brand' }, 'Herald'), unread, dnd, h('span', { class: 'spacer' }), user, markAll, theme, signOut);

    const banner = h('div', { class: 'banner', id: 'connection', role: 'status', 'aria-live': 'polite', 'data-state': 'connecting' }, bannerText.connecting);
    const toast = h('div', { class: 'toast', role: 'alert' });

    const search = h('input', { type: 'search', id: 'search', name: 'q', class: 'search', placeholder: 'Search notifications', 'aria-label': 'Search notifications', autocomplete: 'off', maxlength: 256 });
    const topic = h('select', { id: 'topic-filter', class: 'select', 'aria-label': 'Topic' }, h('option', { value: '' }, 'All topics'));
    const priority = h('select', { id: 'priority-filter', class: 'select', 'aria-label': 'Priority' }, ...priorityChoices.map(([value, label]) => h('option', { value }, label)));
    const unreadOnly = h('input', { type: 'checkbox', id: 'unread-only' });
    const filters = h(
      'form',
      { class: 'filters', role: 'search', 'aria-label': 'Filter notifications' },
      search,
      topic,
      priority,
      h('label', { class: 'check', for: 'unread-only' }, unreadOnly, 'Unread only'),
    );

    const notice = h('p', { class: 'notice', id: 'list-notice', hidden: true });
    const feed = h('div', { class: 'feed', role: 'feed', id: 'feed', 'aria-label': 'Notifications', 'aria-busy': 'true' });
    const sentinel = h('div', { class: 'sentinel', 'aria-hidden': 'true' });
    const loading = h('p', { class: 'loading', hidden: true }, 'Loading…');
    const end = h('p', { class: 'end', id: 'list-end', hidden: true }, 'No older notifications.');
    const list = h('main', { class: 'list', id: 'list' }, h('div', { class: 'column' }, notice, feed, loading, sentinel, end));
    this.#root.replaceChildren(h('div', { class: 'app' }, header, banner, toast, filters, list));

    markAll.addEventListener('click', () => void this.#markAllRead(), { signal });
    theme.addEventListener('click', () => theme.setAttribute('aria-pressed', String(toggleTheme() === 'dark')), { signal });
    onSystemThemeChange(() => theme.setAttribute('aria-pressed', String(currentTheme() === 'dark')), signal);
    signOut.addEventListener('click', () => onSignOut(), { signal });

    filters.addEventListener('submit', (event) => {
      event.preventDefault();
      this.#applySearch(search.value);
    }, { signal });
    search.addEventListener('input', () => {
      clearTimeout(this.#searchTimer);
      this.#searchTimer = setTimeout(() => this.#applySearch(search.value), defaults.searchDebounceMs);
    }, { signal });
    topic.addEventListener('change', () => this.#setFilters({ topic: topic.value }), { signal });
    priority.addEventListener('change', () => this.#setFilters({ minPriority: Number(priority.value) }), { signal });
    unreadOnly.addEventListener('change', () => this.#setFilters({ unreadOnly: unreadOnly.checked }), { signal });

    feed.addEventListener('click', (event) => this.#onClick(event), { signal });
    feed.addEventListener('keydown', (event) => this.#onKey(event), { signal });
    feed.addEventListener('animationend', (event) => (event.target as Element).classList.remove('fresh'), { signal });

    return { unread, user, dnd, markAll, theme, banner, toast, topic, filters, notice, feed, sentinel, loading, end, list };
  }

  // Loading.

  #applySearch(value: string): void {
    clearTimeout(this.#searchTimer);
    const q = value.trim();
    if (q !== this.#filters.q) this.#setFilters({ q });
  }

  #setFilters(patch: Partial<Filters>): void {
    this.#filters = { ...this.#filters, ...patch };
    void this.#reload();
  }

  async #reload(): Promise<void> {
    const generation = ++this.#generation;
    this.#items.clear();
    this.#elements.clear();
    this.#ui.feed.replaceChildren();
    this.#hasMore = false;
    this.#cached = false;
    this.#failure = undefined;
    await this.#loadPage(generation, undefined);
  }

  async #loadMore(): Promise<void> {
    if (this.#loading || !this.#hasMore || this.#failure !== undefined) return;
    const oldest = Math.min(...this.#items.keys());
    await this.#loadPage(this.#generation, Number.isFinite(oldest) ? oldest : undefined);
  }

  async #loadPage(generation: number, before: number | undefined): Promise<void> {
    this.#loading = true;
    this.#ui.feed.setAttribute('aria-busy', 'true');
    this.#ui.loading.hidden = false;
    try {
      const page: ListedPage = await this.#bridge.listInbox(toQuery(this.#filters, defaults.pageSize, before));
      if (generation !== this.#generation) return;
      for (const item of page.items) this.#upsert(item);
      this.#hasMore = page.items.length >= defaults.pageSize;
      this.#cached = page.cached === true;
      this.#setUnread(page.unread);
    } catch (error) {
      if (generation !== this.#generation) return;
      this.#failure = `Could not load notifications: ${describe(error)}`;
    } finally {
      if (generation === this.#generation) {
        this.#loading = false;
        this.#ui.feed.setAttribute('aria-busy', 'false');
        this.#ui.loading.hidden = true;
        this.#render();
        // The sentinel may still be in view (a tall window): observing again reports it afresh.
        this.#observer.unobserve(this.#ui.sentinel);
        if (this.#hasMore && this.#failure === undefined) this.#observer.observe(this.#ui.sentinel);
      }
    }
  }

  /** After a reconnect: the newest page again, for read changes and deletions made while away. */
  async #catchUp(): Promise<void> {
    if (this.#cached || this.#failure !== undefined) {
      await this.#reload();
      return;
    }
    const generation = this.#generation;
    let page: ListedPage;
    try {
      page = await this.#bridge.listInbox(toQuery(this.#filters, defaults.pageSize));
    } catch {
      return;
    }
    if (generation !== this.#generation || page.cached === true) return;
    const listed = new Set(page.items.map((item) => item.seq));
    const floor = page.items.length >= defaults.pageSize ? Math.min(...listed) : 0;
    for (const seq of this.#items.keys()) if (seq >= floor && seq <= page.head && !listed.has(seq)) this.#items.delete(seq);
    for (const item of page.items) this.#upsert(item);
    this.#setUnread(page.unread);
    this.#render();
  }

  // Changes.

  #upsert(item: Notification): void {
    if (item.topic !== undefined) this.#addTopic(item.topic);
    const held = this.#items.get(item.seq);
    this.#items.set(item.seq, item);
    const element = this.#elements.get(item.seq);
    if (!element || !held) return;
    // The same seq with another id: the server's history was replaced. Draw it anew.
    if (held.id !== item.id) this.#elements.delete(item.seq);
    else if (held.read !== item.read) setRead(element, item.read);
  }

  #arrived(item: Notification): void {
    let changed = false;
    if (item.key !== undefined) {
      // A keyed item replaces the earlier one with that key; the server sends no `deleted` for it.
      for (const [seq, held] of this.#items) {
        if (held.key === item.key && seq !== item.seq) {
          this.#items.delete(seq);
          changed = true;
        }
      }
    }
    if (item.topic !== undefined) this.#addTopic(item.topic);
    if (matchesQuery(item, toQuery(this.#filters, defaults.pageSize))) {
      const isNew = !this.#items.has(item.seq);
      this.#upsert(item);
      changed = true;
      this.#render();
      if (isNew) this.#elements.get(item.seq)?.classList.add('fresh');
      return;
    }
    if (changed) this.#render();
  }

  #readChanged(change: { seqs?: number[]; upTo?: number; unread: number }): void {
    const seqs = change.seqs ? new Set(change.seqs) : undefined;
    const upTo = change.upTo;
    this.#markLocally((item) => (seqs ? seqs.has(item.seq) : upTo !== undefined && item.seq <= upTo), true);
    this.#setUnread(change.unread);
  }

  #deleted(seqs: number[]): void {
    for (const seq of seqs) this.#items.delete(seq);
    this.#render();
  }

  #stateChanged(state: BridgeState): void {
    const banner = this.#ui.banner;
    banner.dataset.state = state.connection;
    banner.textContent = bannerText[state.connection];
    this.#root.dataset.connection = state.connection;
    this.#ui.user.textContent = state.user ?? '';
    this.#setUnread(state.unread);
    const dndUntil = state.doNotDisturbUntil;
    this.#ui.dnd.hidden = dndUntil === undefined || dndUntil <= Date.now();
    if (dndUntil !== undefined) this.#ui.dnd.textContent = `Do not disturb until ${timeLabel(new Date(dndUntil))}`;
    switch (state.connection) {
      case 'connected':
        if (this.#lostConnection) void this.#catchUp();
        this.#lostConnection = false;
        this.#wasConnected = true;
        break;
      case 'reconnecting':
      case 'offline':
        if (this.#wasConnected) this.#lostConnection = true;
        break;
      case 'connecting':
      case 'signed-out':
        break;
      default:
        assertNever(state.connection);
    }
    this.#render();
  }

  #setUnread(unread: number): void {
    this.#unread = unread;
    this.#ui.unread.textContent = unread === 0 ? 'All read' : `${unread} unread`;
    this.#ui.markAll.disabled = unread === 0;
    document.title = unread === 0 ? 'Herald' : `(${unread}) Herald`;
  }

  #addTopic(topic: string): void {
    if (this.#topics.has(topic)) return;
    this.#topics.add(topic);
    const select = this.#ui.topic;
    const options = [...this.#topics].sort().map((name) => h('option', { value: name }, `#${name}`));
    select.replaceChildren(h('option', { value: '' }, 'All topics'), ...options);
    select.value = this.#filters.topic;
  }

  // Read state.

  #markLocally(which: (item: Notification) => boolean, read: boolean): void {
    for (const item of this.#items.values()) {
      if (item.read === read || !which(item)) continue;
      this.#items.set(item.seq, { ...item, read });
      const element = this.#elements.get(item.seq);
      if (element) setRead(element, read);
    }
  }

  async #markRead(seq: number): Promise<void> {
    const item = this.#items.get(seq);
    if (!item || item.read) return;
    this.#markLocally((other) => other.seq === seq, true);
    this.#setUnread(Math.max(0, this.#unread - 1));
    try {
      this.#setUnread((await this.#bridge.markRead({ seqs: [seq] })).unread);
    } catch (error) {
      this.#markLocally((other) => other.seq === seq, false);
      this.#setUnread(this.#unread + 1);
      this.#toast(`Could not mark as read: ${describe(error)}`);
    }
  }

  async #markAllRead(): Promise<void> {
    try {
      const { unread } = await this.#bridge.markAllRead();
      this.#markLocally(() => true, true);
      this.#setUnread(unread);
    } catch (error) {
      this.#toast(`Could not mark all as read: ${describe(error)}`);
    }
  }

  /**
   * A toast was clicked: scroll to that item and focus it, clearing the filters when they hide it. Waits for the
   * first page, since the window may have been opened by that very click.
   */
  async focusItem(seq: number): Promise<void> {
    await this.ready;
    if (!this.#items.has(seq) && isFiltered(this.#filters) && !this.#abort.signal.aborted) {
      this.#filters = { ...noFilters };
      this.#ui.filters.reset();
      await this.#reload();
    }
    if (this.#abort.signal.aborted) return;
    const element = this.#elements.get(seq);
    if (!element) {
      this.#toast('That notification is no longer in the list.');
      return;
    }
    element.scrollIntoView({ block: 'center' });
    element.focus();
    void this.#markRead(seq);
  }

  /** The tray's Settings…: opens the settings dialog, once the button is there (desktop only). */
  async openSettings(): Promise<void> {
    (await this.#settingsButton)?.click();
  }

  /** Desktop: a Settings button in the header. The web inbox has no settings (`getSettings()` is null). */
  async #addSettings(): Promise<HTMLButtonElement | undefined> {
    let view;
    try {
      view = await this.#bridge.getSettings();
    } catch {
      return undefined;
    }
    const signal = this.#abort.signal;
    if (view === null || signal.aborted) return undefined;
    const onError = (message: string) => this.#toast(message);
    const button = createSettingsButton({ bridge: this.#bridge, host: this.#root, signal, onError });
    this.#ui.theme.before(button);
    return button;
  }

  #activate(seq: number): void {
    void this.#markRead(seq);
    if (this.#bridge.kind === 'desktop') this.#bridge.openItem(seq).catch((error: unknown) => this.#toast(`Could not open it: ${describe(error)}`));
  }

  #toast(message: string): void {
    clearTimeout(this.#toastTimer);
    this.#ui.toast.textContent = message;
    this.#toastTimer = setTimeout(() => (this.#ui.toast.textContent = ''), 6_000);
  }

  // Input.

  #onClick(event: MouseEvent): void {
    const target = event.target instanceof Element ? event.target : null;
    const article = target?.closest<HTMLElement>('article.entry');
    if (!target || !article) return;
    const seq = Number(article.dataset.seq);
    // A link opens by itself; following it also counts as reading the item.
    if (target.closest('a')) void this.#markRead(seq);
    else this.#activate(seq);
  }

  /** The feed pattern (WAI-ARIA APG): arrows and Page keys move between items, Enter or Space opens one. */
  #onKey(event: KeyboardEvent): void {
    const target = event.target instanceof HTMLElement ? event.target : null;
    const article = target?.closest<HTMLElement>('article.entry');
    if (!target || !article) return;
    const articles = [...this.#ui.feed.querySelectorAll<HTMLElement>('article.entry')];
    const index = articles.indexOf(article);
    let next: HTMLElement | undefined;
    switch (event.key) {
      case 'ArrowDown':
      case 'PageDown':
        next = articles[index + 1];
        break;
      case 'ArrowUp':
      case 'PageUp':
        next = articles[index - 1];
        break;
      case 'Home':
        next = articles[0];
        break;
      case 'End':
        next = articles.at(-1);
        break;
      case 'Enter':
      case ' ':
        if (target !== article) return;
        event.preventDefault();
        this.#activate(Number(article.dataset.seq));
        return;
      default:
        return;
    }
    event.preventDefault();
    next?.focus();
    next?.scrollIntoView({ block: 'nearest' });
  }

  // Drawing.

  /** Keyed: existing articles stay in place (and keep focus); new ones are inserted where they belong. */
  #render(): void {
    const feed = this.#ui.feed;
    const ordered = [...this.#items.values()].sort((a, b) => b.seq - a.seq);
    for (const [seq, element] of this.#elements) {
      if (this.#items.has(seq)) continue;
      element.remove();
      this.#elements.delete(seq);
    }
    for (const element of feed.querySelectorAll<HTMLElement>('article.entry')) {
      if (this.#elements.get(Number(element.dataset.seq)) !== element) element.remove();
    }
    const links = this.#bridge.kind === 'web';
    const now = new Date();
    const setSize = this.#hasMore ? -1 : ordered.length;
    let cursor: ChildNode | null = feed.firstChild;
    let previousDay: string | undefined;
    ordered.forEach((item, index) => {
      let element = this.#elements.get(item.seq);
      if (!element) {
        element = renderItem(item, { links });
        this.#elements.set(item.seq, element);
      }
      const created = new Date(item.createdAt);
      const day = dayKey(created);
      setDayHeading(element, day === previousDay ? undefined : dayLabel(created, now));
      previousDay = day;
      element.setAttribute('aria-posinset', String(index + 1));
      element.setAttribute('aria-setsize', String(setSize));
      if (element === cursor) cursor = element.nextSibling;
      else feed.insertBefore(element, cursor);
    });

    const { notice, end } = this.#ui;
    let message: string | undefined;
    if (this.#failure !== undefined) message = this.#failure;
    else if (this.#cached) message = `Offline: showing ${ordered.length} notification${ordered.length === 1 ? '' : 's'} saved in this browser.`;
    else if (ordered.length === 0 && !this.#loading) message = isFiltered(this.#filters) ? 'No notifications match these filters.' : 'No notifications yet.';
    notice.hidden = message === undefined;
    notice.textContent = message ?? '';
    notice.classList.toggle('warning', this.#failure !== undefined || this.#cached);
    end.hidden = this.#loading || this.#hasMore || ordered.length === 0 || this.#failure !== undefined;
  }
}
