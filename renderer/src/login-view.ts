import type { SignInRequest, SignInResult } from '@herald/protocol';
import { h } from './dom.js';

export interface LoginViewOptions {
  root: HTMLElement;
  /** Desktop: the form also asks for the server's address. The web inbox signs in to the server that served it. */
  askServer: boolean;
  /** Shown above the form, e.g. why the previous session ended. */
  message?: string;
  signIn: (request: SignInRequest) => Promise<SignInResult>;
}

function explain(result: Extract<SignInResult, { ok: false }>, withToken: boolean): string {
  switch (result.code) {
    case 'unauthorized':
      return withToken ? 'That token is not valid (or was revoked).' : 'Wrong user name or password.';
    case 'unreachable':
      return 'The server cannot be reached. Check the address and the connection, then try again.';
    default:
      return result.message;
  }
}

/**
 * The sign-in form: a user name and password, or a device token pasted from an admin
 * (`herald-server token create --user NAME`). Desktop adds the server's address.
 */
export function showLogin(options: LoginViewOptions): void {
  const server = options.askServer ? h('input', { id: 'login-server', name: 'server', type: 'text', inputmode: 'url', spellcheck: 'false', required: true, placeholder: 'https://herald.example.com', autocomplete: 'url' }) : null;
  const name = h('input', { id: 'login-name', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const token = h('input', { id: 'login-token', name: 'token', type: 'password', autocomplete: 'off', required: true, disabled: true });
  const withPassword = h('input', { type: 'radio', name: 'method', value: 'password', id: 'method-password', checked: true });
  const withToken = h('input', { type: 'radio', name: 'method', value: 'token', id: 'method-token' });
  const submit = h('button', { type: 'submit', class: 'button primary' }, 'Sign in');
  const message = h('p', { class: 'form-message', id: 'login-message', role: 'alert' }, options.message ?? '');
  const passwordFields = h('div', { class: 'fields' }, h('label', { for: 'login-name' }, 'User name'), name, h('label', { for: 'login-password' }, 'Password'), password);
  const tokenFields = h('div', { class: 'fields', hidden: true }, h('label', { for: 'login-token' }, 'Device token'), token);
  const form = h(
    'form',
    { class: 'login-card', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in to Herald'),
    message,
    server && h('label', { for: 'login-server' }, 'Server'),
    server,
    h(
      'fieldset',
      { class: 'method' },
      h('legend', { class: 'sr-only' }, 'Sign in with'),
      h('label', { for: 'method-password' }, withPassword, 'With a password'),
      h('label', { for: 'method-token' }, withToken, 'With a device token'),
    ),
    passwordFields,
    tokenFields,
    submit,
  );
  const switchMethod = () => {
    const useToken = withToken.checked;
    passwordFields.hidden = useToken;
    tokenFields.hidden = !useToken;
    name.disabled = password.disabled = useToken;
    token.disabled = !useToken;
  };
  withPassword.addEventListener('change', switchMethod);
  withToken.addEventListener('change', switchMethod);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const useToken = withToken.checked;
    const where = server ? { server: server.value.trim() } : {};
    const request: SignInRequest = useToken ? { ...where, token: token.value.trim() } : { ...where, name: name.value.trim(), password: password.value };
    submit.disabled = true;
    message.textContent = '';
    // On success the bridge's state turns from signed-out, and the app swaps this form for the inbox.
    options.signIn(request).then(
      (result) => {
        if (result.ok) return;
        submit.disabled = false;
        message.textContent = explain(result, useToken);
        (useToken ? token : password).select();
      },
      (error: unknown) => {
        submit.disabled = false;
        message.textContent = error instanceof Error ? error.message : String(error);
      },
    );
  });
  options.root.replaceChildren(h('main', { class: 'login' }, form));
  document.title = 'Sign in · Herald';
  (server ?? name).focus();
}
