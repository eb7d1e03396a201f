package smoke

import "encoding/json"

func jsonString(v interface{}) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
