package e164_test

import (
	"fmt"

	"github.com/trackline/trackline/pool/e164"
)

func ExampleNormalize() {
	for _, raw := range []string{"085 208 79 72", "+31 (0)85 208 7972", "tel:0031852087972", "085-CALL-NOW"} {
		n, err := e164.Normalize(raw, "31")
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(n)
	}
	// Output:
	// +31852087972
	// +31852087972
	// +31852087972
	// error: e164: invalid number
}

func ExampleFormat() {
	for _, n := range []string{"+31852087972", "+31612345678", "+31111123456", "+14155550100"} {
		fmt.Printf("%s | %s | %s\n", e164.Format(n, e164.National), e164.Format(n, e164.International), e164.Format(n, e164.E164))
	}
	// Output:
	// 085 208 7972 | +31 85 208 7972 | +31852087972
	// 06 1234 5678 | +31 6 1234 5678 | +31612345678
	// 0111 123 456 | +31 111 123 456 | +31111123456
	// +14155550100 | +1 4155550100 | +14155550100
}
