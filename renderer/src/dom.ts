type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | number | boolean | null | undefined>;

/**
 * Creates an element. Strings become text nodes, never markup: server data only ever reaches the page this
 * way (or through `textContent`). Event-handler and style attributes are refused, so the CSP never has to.
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attributes: Attributes = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (/^on|^style$|^srcdoc$/i.test(name)) throw new Error(`h(): refusing attribute ${name}`);
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') element.className = String(value);
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) if (child !== null && child !== undefined && child !== false) element.append(child);
  return element;
}

/** The element with this id, which the caller knows exists. */
export function byId<T extends HTMLElement>(root: ParentNode, id: string, type: new () => T): T {
  const element = root.querySelector(`#${CSS.escape(id)}`);
  if (!(element instanceof type)) throw new Error(`#${id} is missing`);
  return element;
}
