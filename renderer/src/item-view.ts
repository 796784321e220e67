import type { Notification } from '@herald/protocol';
import { h } from './dom.js';
import { fullTimeLabel, isHttpUrl, priorityName, timeLabel } from './format.js';

export interface ItemViewOptions {
  /**
   * Web: the item's URL and actions are ordinary links. Desktop: the window may not navigate, so the item
   * opens through the bridge instead and no links are drawn.
   */
  links: boolean;
}

/** A link that leaves the inbox: new tab, no opener, no referrer; only ever an http(s) URL. */
function externalLink(url: string, label: string, className: string): HTMLAnchorElement {
  return h('a', { class: className, href: url, target: '_blank', rel: 'noopener noreferrer', referrerpolicy: 'no-referrer' }, label);
}

/**
 * One notification as a feed article. Every server-supplied string goes in as text. The day heading, when
 * this is the first item of its day, is set by {@link setDayHeading}.
 */
export function renderItem(item: Notification, options: ItemViewOptions): HTMLElement {
  const id = `n${item.seq}`;
  const created = new Date(item.createdAt);
  const meta = h('div', { class: 'meta', id: `${id}-meta` });
  meta.append(h('span', { class: `badge priority p${item.priority}` }, h('span', { class: 'sr-only' }, 'Priority: '), priorityName(item.priority)));
  if (item.topic !== undefined) meta.append(h('span', { class: 'topic' }, h('span', { class: 'sr-only' }, 'Topic: '), `#${item.topic}`));
  if (item.tags.length > 0) meta.append(h('ul', { class: 'tags', 'aria-label': 'Tags' }, ...item.tags.map((tag) => h('li', { class: 'tag' }, tag))));
  if (options.links) {
    if (isHttpUrl(item.url)) meta.append(externalLink(item.url, 'Open link', 'link'));
    for (const action of item.actions) if (isHttpUrl(action.url)) meta.append(externalLink(action.url, action.label, 'link action'));
  }

  const icon = item.icon !== null && isHttpUrl(item.icon) && item.icon.startsWith('https:') ? h('img', { class: 'icon', src: item.icon, alt: '', loading: 'lazy', referrerpolicy: 'no-referrer', width: 32, height: 32 }) : null;
  const card = h(
    'div',
    { class: 'card' },
    h('span', { class: 'dot', 'aria-hidden': 'true' }),
    icon,
    h(
      'div',
      { class: 'content' },
      h(
        'div',
        { class: 'headline' },
        h('h3', { class: 'title', id: `${id}-title` }, h('span', { class: 'sr-only unread-label' }, 'Unread: '), item.title),
        h('time', { datetime: item.createdAt, title: fullTimeLabel(created) }, timeLabel(created)),
      ),
      item.body === '' ? null : h('p', { class: 'body', id: `${id}-body` }, item.body),
      meta,
    ),
  );
  const article = h(
    'article',
    {
      class: 'entry',
      tabindex: 0,
      'data-seq': item.seq,
      'aria-labelledby': `${id}-title`,
      'aria-describedby': item.body === '' ? `${id}-meta` : `${id}-body ${id}-meta`,
    },
    card,
  );
  setRead(article, item.read);
  return article;
}

export function setRead(article: HTMLElement, read: boolean): void {
  article.classList.toggle('unread', !read);
  const label = article.querySelector('.unread-label');
  if (label) label.textContent = read ? '' : 'Unread: ';
}

/** Shows `label` as a day heading above this article, or none when `label` is undefined. */
export function setDayHeading(article: HTMLElement, label: string | undefined): void {
  const current = article.querySelector(':scope > h2.day');
  if (label === undefined) {
    current?.remove();
    return;
  }
  if (current) {
    if (current.textContent !== label) current.textContent = label;
    return;
  }
  article.prepend(h('h2', { class: 'day' }, label));
}
