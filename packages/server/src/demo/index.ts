/** The demo ecosystem: seeds an empty Baton and plays orders through it, for `baton demo` and `serve`. */
export { DemoRequestError } from './demo-client.js';
export type { DemoSummary } from './demo-summary.js';
export type { QuoteCounts, Story } from './order-stories.js';
export {
  DEMO_ORDERS,
  DEMO_ORDERS_MAX,
  DEMO_PARTNERS,
  DEMO_PARTNERS_MAX,
  DEMO_PARTNERS_MIN,
  DEMO_SEED,
  DemoFailedError,
  type DemoKey,
  type DemoOptions,
  type DemoPhase,
  type DemoProgress,
  DemoRefusedError,
  type DemoResult,
  demoConfig,
  existingData,
  runDemo,
} from './run-demo.js';
