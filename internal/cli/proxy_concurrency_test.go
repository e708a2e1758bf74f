package cli

import "testing"

func TestProxyConcurrency(t *testing.T) {
	tests := []struct {
		name    string
		flag    int
		changed bool
		env     map[string]string
		want    int
		wantErr bool
	}{
		{name: "default", want: defaultProxyConcurrency},
		{name: "flag", flag: 4, changed: true, env: map[string]string{concurrencyEnv: "2", "GOMAXPROCS": "3"}, want: 4},
		{name: "flag zero: every CPU", flag: 0, changed: true, want: 0},
		{name: "negative flag", flag: -1, changed: true, wantErr: true},
		{name: "environment", env: map[string]string{concurrencyEnv: "2"}, want: 2},
		{name: "environment beats GOMAXPROCS", env: map[string]string{concurrencyEnv: "2", "GOMAXPROCS": "3"}, want: 2},
		{name: "bad environment", env: map[string]string{concurrencyEnv: "two"}, wantErr: true},
		{name: "GOMAXPROCS set: the runtime's", env: map[string]string{"GOMAXPROCS": "3"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := proxyConcurrency(tt.flag, tt.changed, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("proxyConcurrency = %d, want %d", got, tt.want)
			}
		})
	}
}
