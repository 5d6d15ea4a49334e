// Entry: read /config.json, then render the app.
import { render } from "preact";
import { App } from "./app";
import { loadConfig } from "./config";
import "./style.css";

const root = document.getElementById("app");
if (root) {
  loadConfig().then(
    (config) => render(<App config={config} />, root),
    (e: Error) => {
      root.textContent = `Pulse cannot start: ${e.message}`;
    },
  );
}
