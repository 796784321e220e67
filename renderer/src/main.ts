import { z } from 'zod';
import './styles.css';
import { mountApp } from './app.js';
import { byId } from './dom.js';
import { applyStoredTheme } from './theme.js';
import { WebBridge } from './web-bridge.js';

// Unless told not to, zod probes `new Function` on its first parse; the CSP forbids eval and reports the probe.
z.config({ jitless: true });
applyStoredTheme();

// The desktop app's preload provides the bridge; in a browser, the web bridge talks to the server that served the page.
mountApp(byId(document, 'app', HTMLDivElement), window.herald ?? new WebBridge());
