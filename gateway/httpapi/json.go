package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// WriteJSON writes v as a JSON response with status, in one write with a Content-Length: a small answer
// leaves in one TCP segment instead of a header packet followed by a body packet, which matters for
// clients that log thousands of small calls.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a handler bug gets here (an unsupported value such as a raw NaN float).
		status = http.StatusInternalServerError
		body = []byte(`{"error":"internal","error_code":"INTERNAL_ERROR","message":"response could not be encoded"}`)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
