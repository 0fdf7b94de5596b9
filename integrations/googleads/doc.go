// Package googleads uploads calls to Google Ads as offline click conversions (issue 19;
// docs/googleads.md).
//
// What it owns: the uploader (Uploader), which finds the calls to upload in the store
// (store.Tx.ConversionCandidates: ended calls of customers with Google Ads settings that
// match the customer's rule), exchanges the customer's OAuth2 refresh token for an access
// token (golang.org/x/oauth2), and posts them in batches to the Google Ads REST API's
// customers/{id}:uploadClickConversions (API version APIVersion), with partial failure on
// and the call id as the order id, so that a retried upload never counts a call twice. It
// records each call's outcome (store.ConversionUpload). And the sealing of the OAuth2 secrets
// with the customer's key (Seal, Unseal), so that the store never holds them in the clear.
//
// What it does not own: the settings' API (package api), the consent the visitor gave
// (the DNI script sends it, package pool stores it on the session), the CSV export.
//
// No upload without consent: a call is uploaded only if its session has a gclid, gbraid or
// wbraid and the visitor's ad consent is granted (store.ConsentGranted); otherwise the call
// is marked skipped with the reason and never uploaded later.
//
// Lifetime: New, then Run(ctx) until ctx ends or Close; Close stops it and waits. Run's
// only goroutine is its own; an upload in flight when it stops is made again after a
// restart (the order id makes that harmless).
package googleads
