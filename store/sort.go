package store

import (
	"cmp"
	"slices"
)

func sortChannels(chs []Channel) {
	slices.SortStableFunc(chs, func(a, b Channel) int {
		if c := cmp.Compare(a.Order, b.Order); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
}
