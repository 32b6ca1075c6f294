import './zod-jitless.ts'; // first: before any schema is built (see the file)
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './app.tsx';
import { applyStoredTheme } from './components/theme.tsx';
import './styles.css';

applyStoredTheme(); // before the first paint: a remembered dark theme never flashes light
const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
