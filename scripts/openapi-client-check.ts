// Uses the types openapi-typescript generates from billow's OpenAPI document the way a client
// would: scripts/check-openapi-client generates them as ./billow-api.d.ts beside a copy of this
// file and compiles both with `tsc --strict`. Each `@ts-expect-error` is a mistake the types must
// catch: were the document vague (a body or a response without a schema), the line would compile
// and tsc would fail on the unused directive.

import type { components, paths } from "./billow-api";

type IngestBodies = paths["/api/v1/events"]["post"]["requestBody"]["content"];
type Ingested =
  paths["/api/v1/events"]["post"]["responses"][202]["content"]["application/json"];

// One event, as `application/cloudevents+json`.
const event: IngestBodies["application/cloudevents+json"] = {
  specversion: "1.0",
  id: "evt-2026-11-01-000001",
  source: "//compute.example.com/hosts/h-17",
  type: "compute.cpu.seconds",
  subject: "cus_01jd0m7x9q3k8w2v5t6r4y1z0a",
  time: "2026-11-01T12:00:00Z",
  data: { seconds: "3600", project: "production" },
};

// A batch, as `application/cloudevents-batch+json`, and the same as `application/json`.
const batch: IngestBodies["application/cloudevents-batch+json"] = [
  event,
  { ...event, id: "evt-2026-11-01-000002", time: "2026-11-01T13:00:00Z" },
];
const asJson: IngestBodies["application/json"][] = [batch, event];

// @ts-expect-error: an event has a subject.
const withoutSubject: components["schemas"]["CloudEvent"] = {
  specversion: "1.0",
  id: "evt-1",
  source: "//compute.example.com",
  type: "compute.cpu.seconds",
  time: "2026-11-01T12:00:00Z",
};

// @ts-expect-error: only CloudEvents 1.0 is taken.
const oldVersion: components["schemas"]["CloudEvent"] = { ...event, specversion: "0.3" };

function summary(answer: Ingested): string {
  const refused = answer.errors.map((error) => `#${error.index} ${error.field}: ${error.reason}`);
  return `${answer.accepted} stored, ${answer.duplicates} duplicates; ${refused.join("; ")}`;
}

// An invoice's total, from `GET /api/v1/invoices/{id}` and from a page of `GET /api/v1/invoices`.
type Invoice =
  paths["/api/v1/invoices/{id}"]["get"]["responses"][200]["content"]["application/json"];
type InvoicePage =
  paths["/api/v1/invoices"]["get"]["responses"][200]["content"]["application/json"];

function total(invoice: Invoice): string {
  const amount: string = invoice.total.amount;
  const minorUnits: number = invoice.totals.total.amount_minor;
  return `${amount} ${invoice.total.currency} (${minorUnits} minor units)`;
}

function totals(page: InvoicePage): string[] {
  const more: boolean = page.has_more;
  const next: string | null | undefined = page.next_cursor;
  return page.data.map((invoice) => `${invoice.id}: ${total(invoice)} ${more} ${next ?? ""}`);
}

function lineAmounts(invoice: Invoice): number[] {
  return invoice.lines.map((line) => line.amount.amount_minor);
}

// @ts-expect-error: an amount in minor units is a number, not a string.
const notText: string = ({} as Invoice).total.amount_minor;

export { asJson, event, lineAmounts, notText, oldVersion, summary, totals, withoutSubject };
